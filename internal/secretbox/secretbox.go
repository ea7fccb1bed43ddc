// Package secretbox encrypts secrets at rest (upstream app secrets, callback keys, client secrets)
// with AES-256-GCM under the gateway's master key.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the master key length in bytes.
const KeySize = 32

const version byte = 1

// ErrDecrypt means a sealed value could not be opened: a wrong master key or tampered data.
var ErrDecrypt = errors.New("secretbox: cannot decrypt (wrong master key or corrupted value)")

// Box seals and opens values with one master key.
type Box struct {
	aead cipher.AEAD
	key  []byte
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: master key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	return &Box{aead: aead, key: append([]byte(nil), key...)}, nil
}

// Derive returns a 32-byte key for one purpose (HKDF-SHA256 of the master key): replicas sharing
// the master key derive the same keys, and no purpose sees another's.
func (b *Box) Derive(purpose string) [32]byte {
	var out [32]byte
	k, err := hkdf.Key(sha256.New, b.key, nil, "qiao/"+purpose, 32)
	if err != nil {
		panic("secretbox: hkdf: " + err.Error()) // cannot happen for a 32-byte output
	}
	copy(out[:], k)
	return out
}

// Seal encrypts plaintext. aad binds the value to where it is stored (e.g. "source/demo/wecom") so a
// sealed value copied to another row does not open.
func (b *Box) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("secretbox: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	out := make([]byte, 0, 1+len(nonce)+len(plaintext)+b.aead.Overhead())
	out = append(out, version)
	out = append(out, nonce...)
	return b.aead.Seal(out, nonce, plaintext, aad)
}

// Open decrypts a value made by Seal with the same aad.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrDecrypt
	}
	pt, err := b.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// ParseKey decodes a master key given as base64 (standard or URL alphabet, padded or not) or as
// 64 hex digits.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("master key decodes to %d bytes; it must be %d (generate one with: openssl rand -base64 32)", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("master key is neither base64 nor hex (generate one with: openssl rand -base64 32)")
}

// LoadKeyFile reads the master key from path; a missing file is an error wrapping
// fs.ErrNotExist.
func LoadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read master key file: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateKeyFile reads the master key from path, or, when the file does not exist, generates
// one and writes it with mode 0600. It never overwrites an existing file.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, perr := ParseKey(string(b))
		if perr != nil {
			return nil, false, fmt.Errorf("master key file %s: %w", path, perr)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read master key file: %w", err)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, false, fmt.Errorf("generate master key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create master key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("write master key file: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write master key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write master key file: %w", err)
	}
	return k, true, nil
}
