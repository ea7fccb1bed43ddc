package dingtalk

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/msgcrypt"
)

const (
	fuzzToken  = "123456"
	fuzzAESKey = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij"
	fuzzKey    = "suite4xxxxxxxxxxxxxxx"
)

// FuzzDecode feeds the DingTalk push decoder arbitrary methods, queries and bodies. It must never
// panic, must fail only with ErrForged or ErrMalformed, and whatever it accepts must carry a
// signature that an independent computation over the query and the body's ciphertext confirms.
func FuzzDecode(f *testing.F) {
	c, err := msgcrypt.New(fuzzToken, fuzzAESKey, fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	d, err := NewDecoder(map[string]string{"app_key": fuzzKey}, map[string]string{"callback_token": fuzzToken, "aes_key": fuzzAESKey})
	if err != nil {
		f.Fatal(err)
	}
	for _, plain := range []string{
		`{"EventType":"user_leave_org","userId":["zhangsan"],"eventId":"e1"}`,
		`{"EventType":"org_dept_create","DeptId":[2,3]}`,
		`{"EventType":"check_url"}`,
	} {
		enc, sig, err := c.Seal([]byte(plain), "1700000000000", "nonce1")
		if err != nil {
			f.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"encrypt": enc})
		f.Add(true, url.Values{"signature": {sig}, "timestamp": {"1700000000000"}, "nonce": {"nonce1"}}.Encode(), body)
		f.Add(true, url.Values{"msg_signature": {strings.ToUpper(sig)}, "timeStamp": {"1700000000000"}, "nonce": {"nonce1"}}.Encode(), body)
	}
	f.Add(false, "", []byte(`{"encrypt":"x"}`))
	f.Add(true, "signature=x&timestamp=-1", []byte(`{}`))
	f.Fuzz(func(t *testing.T, post bool, rawQuery string, body []byte) {
		method := "GET"
		if post {
			method = "POST"
		}
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		cb, err := d.Decode(method, q, body)
		if err != nil {
			if !errors.Is(err, federation.ErrForged) && !errors.Is(err, federation.ErrMalformed) {
				t.Fatalf("Decode failed outside the two kinds: %v", err)
			}
			return
		}
		var env struct {
			Encrypt string `json:"encrypt"`
		}
		_ = json.Unmarshal(body, &env)
		sig, ts := q.Get("signature"), q.Get("timestamp")
		if sig == "" {
			sig = q.Get("msg_signature")
		}
		if ts == "" {
			ts = q.Get("timeStamp")
		}
		want := c.Signature(ts, q.Get("nonce"), env.Encrypt)
		if strings.ToLower(sig) != want || cb.Signature != want {
			t.Fatalf("accepted a push whose signature does not verify: sent %q, computed %q, reported %q", sig, want, cb.Signature)
		}
	})
}
