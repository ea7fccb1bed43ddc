package msgcrypt

import "testing"

// FuzzDecrypt: no input makes Decrypt or Open panic, and whatever Open accepts re-encrypts to
// something Open returns unchanged. Run: go test -fuzz=FuzzDecrypt ./federation/msgcrypt
func FuzzDecrypt(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.signature, v.timestamp, v.nonce, v.ct)
	}
	f.Add("", "", "", "")
	f.Add("x", "1", "2", "AAAAAAAAAAAAAAAAAAAAAA==")
	c, err := New("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sig, ts, nonce, ct string) {
		_, _ = c.Decrypt(sig, ts, nonce, ct)
		// Sign it ourselves so the fuzzer also reaches past the signature check.
		msg, err := c.Decrypt(c.Signature(ts, nonce, ct), ts, nonce, ct)
		if err != nil {
			return
		}
		again, err := c.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.Open(again)
		if err != nil || string(back) != string(msg) {
			t.Fatalf("re-encrypted message did not round-trip: %v", err)
		}
	})
}
