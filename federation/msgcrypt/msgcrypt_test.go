package msgcrypt

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// Published vectors, upstream-apis.md §1.9 (WeCom W1) and §2.8 (DingTalk D2, D3).
type vector struct {
	name, token, key, receiveID     string
	signature, timestamp, nonce, ct string
	random, plaintext               string
}

const w1b = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="

const w1bPlain = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"

var vectors = []vector{
	{"W1-a URL verification", "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7",
		"5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
		"P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
		"c41b64491c2468d0", "1616140317555161061"},
	{"W1-b message", "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7",
		"477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", w1b, "0960688932c47ef1", w1bPlain},
	{"D2 check_url", "mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b",
		"03044561471240d4a14bb09372dfcfd4fd0e40cb", "1608001896814", "WL4PK6yA",
		"0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3",
		"l7Y3EcX2CU5w8av3", `{"EventType":"check_url"}`},
	{"D3 success reply", "tokenxxxx", "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus", "dingxxxxxx",
		"f36f4ba5337d426c7d4bca0dbcb06b3ddc1388fc", "1605695694141", "WelUQl6bCqcBa2fM",
		"X1VSe9cTJUMZu60d3kyLYTrBq5578ZRJtteU94wG0Q4Uk6E/wQYeJRIC0/UFW5Wkya1Ihz9oXAdLlyC9TRaqsQ==",
		"WelUQl6bCqcBa2fM", "success"},
}

func TestPublishedVectorsDecrypt(t *testing.T) {
	for _, v := range vectors {
		c, err := New(v.token, v.key, v.receiveID)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if got := c.Signature(v.timestamp, v.nonce, v.ct); got != v.signature {
			t.Errorf("%s: signature %s, want %s", v.name, got, v.signature)
		}
		pt, err := c.Decrypt(v.signature, v.timestamp, v.nonce, v.ct)
		if err != nil || string(pt) != v.plaintext {
			t.Errorf("%s: Decrypt = %q, %v", v.name, pt, err)
		}
	}
	// The W1-b plaintext's published SHA-256.
	sum := sha256.Sum256([]byte(w1bPlain))
	if hex.EncodeToString(sum[:]) != "62f23e2db9188b2883215b599af3d8ffcaa3fae68770c8f84529cfc560683f32" {
		t.Fatal("W1-b plaintext transcribed wrongly")
	}
}

func TestPublishedVectorsEncrypt(t *testing.T) {
	for _, v := range vectors {
		c, _ := New(v.token, v.key, v.receiveID)
		if got := c.encrypt([]byte(v.random), []byte(v.plaintext)); got != v.ct {
			t.Errorf("%s: encrypt with the published random\n got %s\nwant %s", v.name, got, v.ct)
		}
	}
}

func TestW1EchostrURLEncodedForm(t *testing.T) {
	// WeCom sends echostr URL-encoded in the query; the signature is over the decoded value.
	q, err := url.ParseQuery("echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D")
	if err != nil {
		t.Fatal(err)
	}
	v := vectors[0]
	c, _ := New(v.token, v.key, v.receiveID)
	pt, err := c.Decrypt(v.signature, v.timestamp, v.nonce, q.Get("echostr"))
	if err != nil || string(pt) != v.plaintext {
		t.Fatalf("Decrypt = %q, %v", pt, err)
	}
}

func TestRoundTripAndFreshRandom(t *testing.T) {
	c, _ := New("tok", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "corp")
	for _, msg := range []string{"", "x", strings.Repeat("a", 31), strings.Repeat("b", 32), strings.Repeat("中", 1000)} {
		ct1, err := c.Encrypt([]byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		ct2, _ := c.Encrypt([]byte(msg))
		if ct1 == ct2 {
			t.Fatal("two encryptions are equal: the random prefix is not fresh")
		}
		sig := c.Signature("1", "n", ct1)
		pt, err := c.Decrypt(sig, "1", "n", ct1)
		if err != nil || string(pt) != msg {
			t.Fatalf("round trip of %d bytes: %v", len(msg), err)
		}
	}
	enc, sig, err := c.Seal([]byte("hi"), "1700000000", "abc")
	if err != nil || c.Signature("1700000000", "abc", enc) != sig {
		t.Fatalf("Seal: %v", err)
	}
}

func TestDistinctErrors(t *testing.T) {
	v := vectors[2]
	c, _ := New(v.token, v.key, v.receiveID)
	other, _ := New(v.token, v.key, "dingOTHER")
	if _, err := c.Decrypt("0000000000000000000000000000000000000000", v.timestamp, v.nonce, v.ct); !errors.Is(err, ErrSignature) {
		t.Errorf("bad signature: %v", err)
	}
	if _, err := c.Decrypt(v.signature, v.timestamp, v.nonce+"x", v.ct); !errors.Is(err, ErrSignature) {
		t.Errorf("changed nonce: %v", err)
	}
	if _, err := other.Decrypt(v.signature, v.timestamp, v.nonce, v.ct); !errors.Is(err, ErrReceiveID) {
		t.Errorf("foreign receive ID: %v", err)
	}
	sign := func(ct string) string { return c.Signature(v.timestamp, v.nonce, ct) }
	for _, tc := range []struct {
		ct   string
		want error
	}{
		{"not base64!!", ErrBase64},
		{"", ErrCiphertext},
		{"AAAA", ErrCiphertext}, // 3 bytes
		{v.ct[:len(v.ct)-24] + "==", ErrBase64},
	} {
		if _, err := c.Decrypt(sign(tc.ct), v.timestamp, v.nonce, tc.ct); !errors.Is(err, tc.want) {
			t.Errorf("ct %q: %v, want %v", tc.ct, err, tc.want)
		}
	}
	// A well-formed block whose decryption has bad padding: flip a byte in the last block's IV.
	if _, err := c.Open(flipInSecondToLastBlock(t, v.ct)); !errors.Is(err, ErrPadding) && !errors.Is(err, ErrLength) && !errors.Is(err, ErrReceiveID) {
		t.Errorf("tampered ciphertext: %v", err)
	}
	// A ciphertext with valid padding but a length field larger than the message.
	bad := c.encryptRaw(append(append(make([]byte, 16), 0xff, 0xff, 0xff, 0xff), []byte("short")...))
	if _, err := c.Open(bad); !errors.Is(err, ErrLength) {
		t.Errorf("oversized length field: %v", err)
	}
	// Valid AES blocks whose last byte is not a padding value.
	junk := c.encryptNoPad(make([]byte, 32))
	if _, err := c.Open(junk); !errors.Is(err, ErrPadding) {
		t.Errorf("zero padding: %v", err)
	}
	// Too short to hold random + length.
	if _, err := c.Open(c.encryptRaw([]byte("tiny"))); !errors.Is(err, ErrLength) {
		t.Errorf("too short plaintext: %v", err)
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	for _, k := range []string{"", "short", strings.Repeat("a", 44), strings.Repeat("a", 42) + "!"} {
		if _, err := New("t", k, "r"); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
}
