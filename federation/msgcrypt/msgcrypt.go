// Package msgcrypt is the callback envelope WeCom (WXBizMsgCrypt) and DingTalk
// (DingCallbackCrypto) share: AES-256-CBC with the IV taken from the key, PKCS#7 padding to 32-byte
// blocks, a plaintext of random(16) ‖ uint32-BE length ‖ message ‖ receive ID, standard base64,
// and a SHA-1 signature over the sorted token, timestamp, nonce and ciphertext.
//
// Freshness of timestamps and replay of nonces are the caller's to check: the two platforms use
// different timestamp units (WeCom seconds, DingTalk milliseconds).
package msgcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // the platforms define the signature as SHA-1
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Errors returned by Decrypt, one per check, so a caller can tell an attacker's forgery from a
// misconfigured key or receive ID.
var (
	ErrSignature  = errors.New("msgcrypt: signature mismatch")
	ErrBase64     = errors.New("msgcrypt: ciphertext is not valid base64")
	ErrCiphertext = errors.New("msgcrypt: ciphertext length is not a positive multiple of the AES block size")
	ErrPadding    = errors.New("msgcrypt: bad PKCS#7 padding")
	ErrLength     = errors.New("msgcrypt: message length field does not fit the plaintext")
	ErrReceiveID  = errors.New("msgcrypt: receive ID mismatch")
)

const (
	// BlockSize is the PKCS#7 block size both platforms pad to (not AES's 16).
	BlockSize  = 32
	randomSize = 16
	// MaxCiphertext bounds the base64 text Decrypt accepts; callbacks are small.
	MaxCiphertext = 1 << 20
)

// Crypter encrypts, decrypts and signs callback messages for one (token, key, receive ID).
type Crypter struct {
	token     string
	receiveID string
	block     cipher.Block
	iv        []byte
	rand      io.Reader
}

// New returns a Crypter. encodingAESKey is the 43-character key from the platform's console; the
// AES key is its base64 decoding with "=" appended.
func New(token, encodingAESKey, receiveID string) (*Crypter, error) {
	if len(encodingAESKey) != 43 {
		return nil, fmt.Errorf("msgcrypt: EncodingAESKey must be 43 characters, got %d", len(encodingAESKey))
	}
	for _, r := range encodingAESKey {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return nil, errors.New("msgcrypt: EncodingAESKey must be letters and digits only")
		}
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		// 43 alphanumerics always decode to 32 bytes, unless the last character carries bits
		// beyond the 256 (strict decoding refuses those).
		return nil, errors.New("msgcrypt: EncodingAESKey does not decode to a 32-byte key")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("msgcrypt: %w", err)
	}
	return &Crypter{token: token, receiveID: receiveID, block: block, iv: key[:aes.BlockSize], rand: rand.Reader}, nil
}

// ReceiveID is the receive ID this Crypter checks and writes.
func (c *Crypter) ReceiveID() string { return c.receiveID }

// Signature returns sha1_hex(concat(sort(token, timestamp, nonce, encrypted))).
func (c *Crypter) Signature(timestamp, nonce, encrypted string) string {
	parts := []string{c.token, timestamp, nonce, encrypted}
	sort.Strings(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, ""))) //nolint:gosec
	return hex.EncodeToString(sum[:])
}

// Decrypt checks the signature (in constant time) and decrypts. It never panics, whatever the
// input.
func (c *Crypter) Decrypt(signature, timestamp, nonce, encrypted string) ([]byte, error) {
	want := c.Signature(timestamp, nonce, encrypted)
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(signature)), []byte(want)) != 1 {
		return nil, ErrSignature
	}
	return c.Open(encrypted)
}

// Open decrypts a ciphertext whose signature the caller has already checked (or that has none,
// like a passive reply the caller itself made).
func (c *Crypter) Open(encrypted string) ([]byte, error) {
	if len(encrypted) > MaxCiphertext {
		return nil, ErrCiphertext
	}
	ct, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil {
		return nil, ErrBase64
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, ErrCiphertext
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(c.block, c.iv).CryptBlocks(pt, ct)
	pad := int(pt[len(pt)-1])
	if pad < 1 || pad > BlockSize || pad > len(pt) {
		return nil, ErrPadding
	}
	for _, b := range pt[len(pt)-pad:] {
		if int(b) != pad {
			return nil, ErrPadding
		}
	}
	pt = pt[:len(pt)-pad]
	if len(pt) < randomSize+4 {
		return nil, ErrLength
	}
	n := binary.BigEndian.Uint32(pt[randomSize : randomSize+4])
	rest := pt[randomSize+4:]
	if uint64(n) > uint64(len(rest)) {
		return nil, ErrLength
	}
	msg, rid := rest[:n], rest[n:]
	if !bytes.Equal(rid, []byte(c.receiveID)) {
		return nil, ErrReceiveID
	}
	return msg, nil
}

// Encrypt encrypts msg with a fresh 16-byte random prefix.
func (c *Crypter) Encrypt(msg []byte) (string, error) {
	random := make([]byte, randomSize)
	if _, err := io.ReadFull(c.rand, random); err != nil {
		return "", fmt.Errorf("msgcrypt: random: %w", err)
	}
	return c.encrypt(random, msg), nil
}

func (c *Crypter) encrypt(random, msg []byte) string {
	body := make([]byte, 0, randomSize+4+len(msg)+len(c.receiveID)+BlockSize)
	body = append(body, random...)
	body = binary.BigEndian.AppendUint32(body, uint32(len(msg)))
	body = append(body, msg...)
	body = append(body, c.receiveID...)
	pad := BlockSize - len(body)%BlockSize
	body = append(body, bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(c.block, c.iv).CryptBlocks(body, body)
	return base64.StdEncoding.EncodeToString(body)
}

// Seal encrypts msg and signs it: what a platform sends and what a DingTalk callback replies.
func (c *Crypter) Seal(msg []byte, timestamp, nonce string) (encrypted, signature string, err error) {
	encrypted, err = c.Encrypt(msg)
	if err != nil {
		return "", "", err
	}
	return encrypted, c.Signature(timestamp, nonce, encrypted), nil
}
