package secretbox

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	s1 := b.Seal([]byte("s3cret"), []byte("row1"))
	s2 := b.Seal([]byte("s3cret"), []byte("row1"))
	if bytes.Equal(s1, s2) {
		t.Fatal("two seals of one value are equal: nonce reused")
	}
	if bytes.Contains(s1, []byte("s3cret")) {
		t.Fatal("plaintext visible in sealed value")
	}
	pt, err := b.Open(s1, []byte("row1"))
	if err != nil || string(pt) != "s3cret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := b.Open(s1, []byte("row2")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("value moved to another row opened: %v", err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(s1, []byte("row1")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong key opened: %v", err)
	}
	for _, bad := range [][]byte{nil, {1}, s1[:10], append([]byte{2}, s1[1:]...)} {
		if _, err := b.Open(bad, []byte("row1")); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Open(%x) = %v", bad, err)
		}
	}
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestParseKey(t *testing.T) {
	k := bytes.Repeat([]byte{0xab}, KeySize)
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(k),
		base64.RawURLEncoding.EncodeToString(k),
		"abababababababababababababababababababababababababababababababab",
		" " + base64.StdEncoding.EncodeToString(k) + "\n",
	} {
		got, err := ParseKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Fatalf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "!!!", base64.StdEncoding.EncodeToString([]byte("too short"))} {
		if _, err := ParseKey(s); err == nil {
			t.Fatalf("ParseKey(%q) accepted", s)
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "master.key")
	k1, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode(), err)
	}
	k2, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second load differs: created=%v err=%v", created, err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("corrupt key file accepted")
	}
	if b, _ := os.ReadFile(path); string(b) != "garbage" {
		t.Fatal("corrupt key file overwritten")
	}
}

func TestDerive(t *testing.T) {
	k1 := make([]byte, KeySize)
	k2 := make([]byte, KeySize)
	k2[0] = 1
	a, _ := New(k1)
	a2, _ := New(k1)
	b, _ := New(k2)
	if a.Derive("oidc") != a2.Derive("oidc") {
		t.Fatal("the same master key and purpose must give the same key")
	}
	if a.Derive("oidc") == a.Derive("saml") || a.Derive("oidc") == b.Derive("oidc") {
		t.Fatal("different purposes or master keys must give different keys")
	}
}
