package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGenerateReuseAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	m1, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, alg := range Algs {
		k, err := m1.Signing(alg)
		if err != nil {
			t.Fatal(err)
		}
		ids[alg] = k.ID
	}
	if k, _ := m1.Signing(SAML); k.Cert == nil || k.Cert.SignatureAlgorithm.String() != "SHA256-RSA" {
		t.Fatalf("SAML certificate missing or not SHA-256: %+v", k.Cert)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	m2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range Algs {
		k, _ := m2.Signing(alg)
		if k.ID != ids[alg] {
			t.Fatalf("%s key ID changed across restart: %s -> %s", alg, ids[alg], k.ID)
		}
	}
	if string(m1.JWKS()) != string(m2.JWKS()) {
		t.Fatal("JWKS differs across restart")
	}
}

func TestJWKSHasNoPrivateMaterialAndVerifies(t *testing.T) {
	m, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(m.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	// One key per token algorithm, each with the key type and curve that algorithm needs (RFC 7518,
	// RFC 8037); SAML's RSA key is in the metadata, not here.
	var kinds []string
	for _, k := range set.Keys {
		kinds = append(kinds, fmt.Sprint(k["alg"], " ", k["kty"], " ", k["crv"]))
	}
	slices.Sort(kinds)
	if got := strings.Join(kinds, ", "); got != "ES256 EC P-256, EdDSA OKP Ed25519, RS256 RSA <nil>" {
		t.Fatalf("JWKS keys (alg kty crv): %s; want one RS256 RSA, one ES256 EC P-256 and one EdDSA OKP Ed25519", got)
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Fatalf("JWKS key %v carries private member %q", k["kid"], private)
			}
		}
		if k["use"] != "sig" || k["kid"] == "" {
			t.Fatalf("JWKS key lacks use/kid: %v", k)
		}
	}
	// A signature by the active key verifies with the published public key.
	digest := sha256.Sum256([]byte("payload"))
	for _, alg := range TokenAlgs {
		k, _ := m.Signing(alg)
		msg, opts := digest[:], crypto.Hash(crypto.SHA256)
		if alg == EdDSA {
			msg, opts = []byte("payload"), crypto.Hash(0) // Ed25519 signs the message itself
		}
		sig, err := k.Signer.Sign(rand.Reader, msg, opts)
		if err != nil {
			t.Fatal(err)
		}
		pub, ok := m.PublicKey(k.ID)
		if !ok {
			t.Fatalf("%s key not published", alg)
		}
		switch p := pub.Public().(type) {
		case *rsa.PublicKey:
			if err := rsa.VerifyPKCS1v15(p, crypto.SHA256, digest[:], sig); err != nil {
				t.Fatal(err)
			}
		case *ecdsa.PublicKey:
			if !ecdsa.VerifyASN1(p, digest[:], sig) {
				t.Fatal("ES256 signature does not verify")
			}
		case ed25519.PublicKey:
			if !ed25519.Verify(p, []byte("payload"), sig) {
				t.Fatal("EdDSA signature does not verify")
			}
		default:
			t.Fatalf("%s: unexpected public key %T", alg, p)
		}
	}
}

func TestRotateKeepsOldKeyForGrace(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m, err := Open(dir, WithClock(clock), WithGrace(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	old, _ := m.Signing(RS256)
	if _, err := m.Rotate(RS256); err != nil {
		t.Fatal(err)
	}
	cur, _ := m.Signing(RS256)
	if cur.ID == old.ID {
		t.Fatal("rotation kept the same key")
	}
	if _, ok := m.PublicKey(old.ID); !ok || !strings.Contains(string(m.JWKS()), old.ID) {
		t.Fatal("old key not published during grace")
	}
	es, _ := m.Signing(ES256)
	// Another process sharing the directory sees the rotation on Reload.
	other, err := Open(dir, WithClock(clock), WithGrace(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := other.Signing(RS256); k.ID != cur.ID {
		t.Fatal("second manager did not load the rotated key")
	}
	now = now.Add(2 * time.Hour)
	if _, err := m.Rotate(ES256); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.PublicKey(old.ID); ok || strings.Contains(string(m.JWKS()), old.ID) {
		t.Fatal("old RS256 key still published after its grace period")
	}
	if _, err := os.Stat(filepath.Join(dir, old.ID+".pem")); !os.IsNotExist(err) {
		t.Fatalf("expired key file not removed: %v", err)
	}
	if _, ok := m.PublicKey(es.ID); !ok {
		t.Fatal("just-rotated ES256 key not published")
	}
	// Make the manifest's mtime differ for filesystems with coarse timestamps.
	future := time.Now().Add(time.Minute)
	_ = os.Chtimes(filepath.Join(dir, manifestName), future, future)
	changed, err := other.Reload()
	if err != nil || !changed {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	if k, _ := other.Signing(ES256); k.ID == es.ID {
		t.Fatal("Reload did not pick up the ES256 rotation")
	}
	if _, err := m.Rotate("HS256"); err == nil {
		t.Fatal("unknown algorithm rotated")
	}
}

func TestCorruptFilesStopOpenAndAreNotOverwritten(t *testing.T) {
	dir := t.TempDir()
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := m.Signing(ES256)
	path := filepath.Join(dir, k.ID+".pem")
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt key: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "not a key" {
		t.Fatal("corrupt key file overwritten")
	}
	if err := os.WriteFile(filepath.Join(dir, manifestName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt manifest: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, manifestName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "no keys.json") {
		t.Fatalf("key files without manifest: %v", err)
	}
}

func TestThumbprintRFC7638(t *testing.T) {
	// RFC 7638 section 3.1 example key and thumbprint.
	n := "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	var pub rsa.PublicKey
	nb, _ := decodeB64URL(n)
	pub.N = new(bigInt).SetBytes(nb)
	pub.E = 65537
	got, err := Thumbprint(&pub)
	if err != nil || got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint = %s, %v", got, err)
	}
	// RFC 8037 appendix A.3: the Ed25519 example key's thumbprint.
	x, _ := decodeB64URL("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	got, err = Thumbprint(ed25519.PublicKey(x))
	if err != nil || got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("Ed25519 thumbprint = %s, %v", got, err)
	}
}

// OpenExisting creates nothing: a missing directory or manifest is ErrNoKeys, and an existing set
// loads as Open loads it.
func TestOpenExistingCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if _, err := OpenExisting(dir); !errors.Is(err, ErrNoKeys) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("missing directory: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenExisting created %s: %v", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenExisting(dir); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("empty directory: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("OpenExisting wrote %d files", len(entries))
	}
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := OpenExisting(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := m.Published(), m2.Published(); len(a) != len(Algs) || len(b) != len(Algs) || a[0].ID != b[0].ID {
		t.Fatalf("OpenExisting loaded %d keys, Open %d", len(b), len(a))
	}
}
