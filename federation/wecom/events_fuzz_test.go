package wecom

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/msgcrypt"
)

const (
	fuzzToken  = "QDG6eK"
	fuzzAESKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	fuzzCorp   = "wx5823bf96d3bd56c7"
)

var envelopeRe = regexp.MustCompile(`<Encrypt><!\[CDATA\[([^\]]*)\]\]></Encrypt>`)

// FuzzDecode feeds the event callback decoder arbitrary methods, queries and bodies. It must never
// panic, must fail only with ErrForged or ErrMalformed, and whatever it accepts must carry a
// signature that an independent computation over the query and the body's ciphertext confirms.
func FuzzDecode(f *testing.F) {
	c, err := msgcrypt.New(fuzzToken, fuzzAESKey, fuzzCorp)
	if err != nil {
		f.Fatal(err)
	}
	d, err := NewDecoder(map[string]string{"corp_id": fuzzCorp}, map[string]string{"callback_token": fuzzToken, "encoding_aes_key": fuzzAESKey})
	if err != nil {
		f.Fatal(err)
	}
	seal := func(plain, ts, nonce string) (string, string) {
		enc, sig, err := c.Seal([]byte(plain), ts, nonce)
		if err != nil {
			f.Fatal(err)
		}
		return enc, sig
	}
	ev := "<xml><ToUserName><![CDATA[" + fuzzCorp + "]]></ToUserName><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>" +
		"<ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID></xml>"
	enc, sig := seal(ev, "1409659813", "1372623149")
	f.Add(true, url.Values{"msg_signature": {sig}, "timestamp": {"1409659813"}, "nonce": {"1372623149"}}.Encode(),
		[]byte("<xml><ToUserName><![CDATA["+fuzzCorp+"]]></ToUserName><Encrypt><![CDATA["+enc+"]]></Encrypt></xml>"))
	f.Add(true, url.Values{"msg_signature": {strings.ToUpper(sig)}, "timestamp": {"1409659813"}, "nonce": {"1372623149"}}.Encode(),
		[]byte("<xml><Encrypt><![CDATA["+enc+"]]></Encrypt></xml>"))
	echo, esig := seal("1616140317555161061", "1409659589", "263014780")
	f.Add(false, url.Values{"msg_signature": {esig}, "timestamp": {"1409659589"}, "nonce": {"263014780"}, "echostr": {echo}}.Encode(), []byte(nil))
	f.Add(true, "msg_signature=x&timestamp=1&nonce=n", []byte("<xml><Encrypt>AAAA</Encrypt></xml>"))
	f.Add(true, "", []byte("not xml"))
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
		ciphertext := q.Get("echostr")
		if post {
			m := envelopeRe.FindSubmatch(body)
			if m == nil {
				return // an envelope spelled another valid way; the signature was still checked
			}
			ciphertext = string(m[1])
		}
		want := c.Signature(q.Get("timestamp"), q.Get("nonce"), ciphertext)
		if strings.ToLower(q.Get("msg_signature")) != want || cb.Signature != want {
			t.Fatalf("accepted a callback whose signature does not verify: sent %q, computed %q, reported %q", q.Get("msg_signature"), want, cb.Signature)
		}
	})
}
