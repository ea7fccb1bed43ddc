package dingtalk

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation"
)

// An OAPI answer is decoded once, envelope and result together: an errcode beside a result of
// the wrong shape is still the errcode, a success of the wrong shape is an unexpected result, and
// broken JSON is malformed.
func TestOAPIDecodedOnce(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		code             int
	}{
		{"errcode beside a bad result", `{"errcode":60011,"errmsg":"no permission","result":"x"}`, "permission", 60011},
		{"success of the wrong shape", `{"errcode":0,"errmsg":"ok","result":{"list":"x"}}`, "unexpected result", 0},
		{"broken JSON", `{"errcode":0,"result":{`, "malformed JSON answer", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/gettoken" {
					_, _ = w.Write([]byte(`{"errcode":0,"errmsg":"ok","access_token":"t","expires_in":7200}`))
					return
				}
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			st, err := SettingsFrom(map[string]string{"corp_id": "ding-decode", "app_key": "decode-" + tc.name, "oapi_base_url": srv.URL, "api_base_url": srv.URL},
				map[string]string{"app_secret": "s"})
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
				t.Fatalf("err = %v; want code %d and %q", err, tc.code, tc.want)
			}
		})
	}
}
