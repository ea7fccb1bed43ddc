package wecom

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation"
)

// A user/list answer is decoded once, errcode and members together: an errcode beside a
// member list of the wrong shape is still the errcode, a success of the wrong shape is an
// unexpected answer, and broken JSON is malformed.
func TestUserListDecodedOnce(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		code             int
	}{
		{"errcode beside a bad list", `{"errcode":60011,"errmsg":"no privilege","userlist":"x"}`, "", 60011},
		{"success of the wrong shape", `{"errcode":0,"errmsg":"ok","userlist":{"userid":"a"}}`, "unexpected answer", 0},
		{"a member of the wrong shape", `{"errcode":0,"errmsg":"ok","userlist":[{"userid":7}]}`, "malformed user", 0},
		{"broken JSON", `{"errcode":0,"userlist":[`, "malformed JSON answer", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/gettoken") {
					_, _ = w.Write([]byte(`{"errcode":0,"errmsg":"ok","access_token":"t-` + tc.name + `","expires_in":7200}`))
					return
				}
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			st, err := SettingsFrom(map[string]string{"corp_id": "ww-decode-" + tc.name, "api_base_url": srv.URL}, map[string]string{"secret": "s"})
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewClient(st)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Reader().Users(context.Background(), []federation.Dept{{ID: "1"}}, func(federation.User) error { return nil })
			var fe *federation.Error
			if !errors.As(err, &fe) || fe.Code != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (code %v); want code %d and %q", err, fe, tc.code, tc.want)
			}
		})
	}
}
