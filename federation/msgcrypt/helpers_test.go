package msgcrypt

import (
	"bytes"
	"crypto/cipher"
	"encoding/base64"
	"testing"
)

// encryptRaw pads and encrypts body as is (no random, length or receive ID added).
func (c *Crypter) encryptRaw(body []byte) string {
	pad := BlockSize - len(body)%BlockSize
	body = append(append([]byte(nil), body...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(c.block, c.iv).CryptBlocks(body, body)
	return base64.StdEncoding.EncodeToString(body)
}

// encryptNoPad encrypts body (a multiple of 16 bytes) without padding.
func (c *Crypter) encryptNoPad(body []byte) string {
	out := append([]byte(nil), body...)
	cipher.NewCBCEncrypter(c.block, c.iv).CryptBlocks(out, out)
	return base64.StdEncoding.EncodeToString(out)
}

func flipInSecondToLastBlock(t *testing.T, ct string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(ct)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-17] ^= 0x5a
	return base64.StdEncoding.EncodeToString(b)
}
