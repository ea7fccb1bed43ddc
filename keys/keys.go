// Package keys owns qiao's signing keys: RS256, ES256 and EdDSA (Ed25519) keys for OIDC tokens
// and an RSA key with a self-signed certificate for SAML. They are generated on first start, persisted in the
// database every replica shares (sealed with the master key; store.go) or as PEM files (0600)
// beside a manifest, served from memory, and rotated with a grace period during which the
// previous public key stays published.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

// Algorithms and uses.
const (
	RS256 = "RS256"
	ES256 = "ES256"
	EdDSA = "EdDSA" // Ed25519 (RFC 8037)
	SAML  = "SAML"  // RSA key + certificate, RSA-SHA256 signatures
)

// Algs are the kinds of key the manager keeps one active key of.
var Algs = []string{RS256, ES256, EdDSA, SAML}

// TokenAlgs are the algorithms that sign OIDC tokens and are published in the JWKS.
var TokenAlgs = []string{RS256, ES256, EdDSA}

// algList is Algs for error messages.
const algList = "RS256, ES256, EdDSA or SAML"

const manifestName = "keys.json"

// DefaultGrace is how long a rotated-out key stays published: longer than any token it signed
// lives (ID tokens and access tokens live at most an hour; SAML metadata is cached for a day).
const DefaultGrace = 48 * time.Hour

// Key is one signing key.
type Key struct {
	ID        string // RFC 7638 thumbprint: stable across restarts
	Alg       string
	Signer    crypto.Signer
	Cert      *x509.Certificate // SAML only
	CreatedAt time.Time
	RetiredAt time.Time // zero while active
	ExpiresAt time.Time // when a retired key stops being published
}

// Public returns the public key.
func (k *Key) Public() crypto.PublicKey { return k.Signer.Public() }

// Active reports whether the key signs new tokens.
func (k *Key) Active() bool { return k.RetiredAt.IsZero() }

type manifestEntry struct {
	ID        string    `json:"kid"`
	Alg       string    `json:"alg"`
	File      string    `json:"file"`
	CertFile  string    `json:"cert_file,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	RetiredAt time.Time `json:"retired_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

type manifest struct {
	Keys []manifestEntry `json:"keys"`
}

// snapshot is an immutable view of the key set, swapped atomically so the token path never locks.
type snapshot struct {
	active    map[string]*Key
	published []*Key // active and retired-but-unexpired, newest first
	jwks      []byte
	modTime   time.Time // a keys directory: the manifest's
	version   string    // a database: the stored set's fingerprint
}

// Manager holds the key set of one keys directory (Open) or of the database (OpenStore).
type Manager struct {
	dir     string
	db      directory.Store // set: the keys live in the database (store.go); dir is only imported
	grace   time.Duration
	now     func() time.Time
	mu      sync.Mutex // serializes writers (rotation, reload)
	snap    atomic.Pointer[snapshot]
	rsaBits int
}

// Option configures a Manager.
type Option func(*Manager)

// WithGrace sets how long rotated-out keys stay published.
func WithGrace(d time.Duration) Option { return func(m *Manager) { m.grace = d } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(m *Manager) { m.now = now } }

// WithRSABits sets the RSA key size (default 2048).
func WithRSABits(n int) Option { return func(m *Manager) { m.rsaBits = n } }

// Open loads the key set in dir, generating whatever is missing. It never overwrites a file: a
// directory with key files but no manifest, or an unreadable key, stops it with an error naming
// the file.
func Open(dir string, opts ...Option) (*Manager, error) {
	m := &Manager{dir: dir, grace: DefaultGrace, now: time.Now, rsaBits: 2048}
	for _, o := range opts {
		o(m)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: create %s: %w", dir, err)
	}
	man, err := m.readManifest()
	if errors.Is(err, fs.ErrNotExist) {
		if pems, _ := filepath.Glob(filepath.Join(dir, "*.pem")); len(pems) > 0 {
			return nil, fmt.Errorf("keys: %s holds key files but no %s: restore the manifest from backup, or move the .pem files away to start with new keys", dir, manifestName)
		}
		man = &manifest{}
	} else if err != nil {
		return nil, err
	}
	changed := false
	for _, alg := range Algs {
		if activeEntry(man, alg) == nil {
			e, err := m.generate(alg)
			if err != nil {
				return nil, err
			}
			man.Keys = append(man.Keys, *e)
			changed = true
		}
	}
	if changed {
		if err := m.writeManifest(man); err != nil {
			return nil, err
		}
	}
	if err := m.load(man); err != nil {
		return nil, err
	}
	return m, nil
}

// ErrNoKeys means OpenExisting found no key set: nothing has generated one in the directory.
var ErrNoKeys = errors.New("no signing keys")

// OpenExisting loads the key set in dir as Open does, but creates and generates nothing: a
// directory without a manifest is ErrNoKeys. It is for commands that look at or rotate the keys of
// a gateway that has started before.
func OpenExisting(dir string, opts ...Option) (*Manager, error) {
	m := &Manager{dir: dir, grace: DefaultGrace, now: time.Now, rsaBits: 2048}
	for _, o := range opts {
		o(m)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	man, err := m.readManifest()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keys: %w in %s (no %s)", ErrNoKeys, dir, manifestName)
	} else if err != nil {
		return nil, err
	}
	if err := m.load(man); err != nil {
		return nil, err
	}
	return m, nil
}

func activeEntry(man *manifest, alg string) *manifestEntry {
	for i := range man.Keys {
		if man.Keys[i].Alg == alg && man.Keys[i].RetiredAt.IsZero() {
			return &man.Keys[i]
		}
	}
	return nil
}

func (m *Manager) readManifest() (*manifest, error) {
	path := filepath.Join(m.dir, manifestName)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("keys: read %s: %w", path, err)
	}
	var man manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, fmt.Errorf("keys: %s is corrupt (%v): restore it from backup, or move the keys directory away to start with new keys", path, err)
	}
	return &man, nil
}

// writeManifest replaces the manifest atomically (write, fsync, rename).
func (m *Manager) writeManifest(man *manifest) error {
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return fmt.Errorf("keys: encode manifest: %w", err)
	}
	return writeFileAtomic(filepath.Join(m.dir, manifestName), append(b, '\n'))
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	return nil
}

// writeNew creates a file that must not exist yet.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	return f.Close()
}

// material is a new key in its stored forms.
type material struct {
	kid     string
	signer  crypto.Signer
	der     []byte // PKCS#8
	certDER []byte // SAML only
	created time.Time
}

func (m *Manager) newMaterial(alg string) (*material, error) {
	var signer crypto.Signer
	var err error
	switch alg {
	case RS256, SAML:
		signer, err = rsa.GenerateKey(rand.Reader, m.rsaBits)
	case ES256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("keys: unknown algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	kid, err := Thumbprint(signer.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, fmt.Errorf("keys: encode %s key: %w", alg, err)
	}
	mat := &material{kid: kid, signer: signer, der: der, created: m.now().UTC()}
	if alg == SAML {
		if mat.certDER, err = selfSigned(signer, mat.created); err != nil {
			return nil, err
		}
	}
	return mat, nil
}

func (m *Manager) generate(alg string) (*manifestEntry, error) {
	mat, err := m.newMaterial(alg)
	if err != nil {
		return nil, err
	}
	e := &manifestEntry{ID: mat.kid, Alg: alg, File: mat.kid + ".pem", CreatedAt: mat.created}
	if err := writeNew(filepath.Join(m.dir, e.File), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mat.der})); err != nil {
		return nil, err
	}
	if alg == SAML {
		e.CertFile = mat.kid + ".crt"
		if err := writeNew(filepath.Join(m.dir, e.CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mat.certDER})); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func selfSigned(signer crypto.Signer, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, fmt.Errorf("keys: certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: "qiao SAML signing", Organization: []string{"qiao"}},
		NotBefore:          now.Add(-time.Hour),
		NotAfter:           now.AddDate(10, 0, 0),
		KeyUsage:           x509.KeyUsageDigitalSignature,
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("keys: self-sign SAML certificate: %w", err)
	}
	return der, nil
}

func (m *Manager) readKey(e manifestEntry) (*Key, error) {
	path := filepath.Join(m.dir, filepath.Base(e.File))
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: read %s: %w", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("keys: %s is not a PEM private key: restore it from backup, or remove its entry from %s and restart to generate a new one", path, manifestName)
	}
	var certDER []byte
	cpath := ""
	if e.Alg == SAML {
		cpath = filepath.Join(m.dir, filepath.Base(e.CertFile))
		cb, err := os.ReadFile(cpath)
		if err != nil {
			return nil, fmt.Errorf("keys: read %s: %w", cpath, err)
		}
		cblk, _ := pem.Decode(cb)
		if cblk == nil || cblk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("keys: %s is not a PEM certificate: restore it from backup", cpath)
		}
		certDER = cblk.Bytes
	}
	key, err := parseKey(e.ID, e.Alg, blk.Bytes, certDER, path, cpath)
	if err != nil {
		return nil, err
	}
	key.CreatedAt, key.RetiredAt, key.ExpiresAt = e.CreatedAt, e.RetiredAt, e.ExpiresAt
	return key, nil
}

// parseKey checks a stored key (PKCS#8 DER, and the certificate's DER for SAML) against the ID
// and algorithm it is stored under; where and certWhere name them in errors.
func parseKey(kid, alg string, der, certDER []byte, where, certWhere string) (*Key, error) {
	pk, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: %s is corrupt (%v): restore it from backup", where, err)
	}
	signer, ok := pk.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: %s holds an unsupported key type", where)
	}
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		if alg != RS256 && alg != SAML {
			return nil, fmt.Errorf("keys: %s holds an RSA key but is listed as %s", where, alg)
		}
	case *ecdsa.PrivateKey:
		if alg != ES256 || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("keys: %s holds an EC key that does not fit %s", where, alg)
		}
	case ed25519.PrivateKey:
		if alg != EdDSA {
			return nil, fmt.Errorf("keys: %s holds an Ed25519 key but is listed as %s", where, alg)
		}
	default:
		return nil, fmt.Errorf("keys: %s holds an unsupported key type", where)
	}
	if got, _ := Thumbprint(signer.Public()); got != kid {
		return nil, fmt.Errorf("keys: %s does not hold key %s", where, kid)
	}
	key := &Key{ID: kid, Alg: alg, Signer: signer}
	if alg == SAML {
		cert, err := x509.ParseCertificate(certDER)
		if err != nil {
			return nil, fmt.Errorf("keys: %s is corrupt (%v): restore it from backup", certWhere, err)
		}
		if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(signer.Public()) {
			return nil, fmt.Errorf("keys: certificate %s does not match key %s", certWhere, where)
		}
		key.Cert = cert
	}
	return key, nil
}

func (m *Manager) load(man *manifest) error {
	now := m.now()
	snap := &snapshot{active: map[string]*Key{}}
	for _, e := range man.Keys {
		if !e.RetiredAt.IsZero() && !now.Before(e.ExpiresAt) {
			continue // past its grace period: no longer published
		}
		k, err := m.readKey(e)
		if err != nil {
			return err
		}
		if k.Active() {
			if _, dup := snap.active[k.Alg]; dup {
				return fmt.Errorf("keys: %s names two active %s keys: fix the manifest", manifestName, k.Alg)
			}
			snap.active[k.Alg] = k
		}
		snap.published = append(snap.published, k)
	}
	if st, err := os.Stat(filepath.Join(m.dir, manifestName)); err == nil {
		snap.modTime = st.ModTime()
	}
	return m.publish(snap)
}

// publish completes a snapshot (order, JWKS) and makes it the current key set.
func (m *Manager) publish(snap *snapshot) error {
	sort.SliceStable(snap.published, func(i, j int) bool { return snap.published[i].CreatedAt.After(snap.published[j].CreatedAt) })
	jwks, err := buildJWKS(snap.published)
	if err != nil {
		return err
	}
	snap.jwks = jwks
	m.snap.Store(snap)
	return nil
}

// Signing returns the active key of alg (RS256, ES256, EdDSA or SAML).
func (m *Manager) Signing(alg string) (*Key, error) {
	k := m.snap.Load().active[alg]
	if k == nil {
		return nil, fmt.Errorf("keys: no active %s key", alg)
	}
	return k, nil
}

// Published returns the keys whose public halves are published (active first, then retired keys
// still in their grace period), newest first.
func (m *Manager) Published() []*Key {
	return append([]*Key(nil), m.snap.Load().published...)
}

// PublicKey returns a published key by ID.
func (m *Manager) PublicKey(kid string) (*Key, bool) {
	for _, k := range m.snap.Load().published {
		if k.ID == kid {
			return k, true
		}
	}
	return nil, false
}

// JWKS returns the JSON Web Key Set of the published token-signing keys (RS256, ES256, EdDSA). It holds
// public material only.
func (m *Manager) JWKS() []byte { return m.snap.Load().jwks }

// Rotate makes a new active key for each named alg (all when none are named) and retires the old
// one, which stays published for the grace period.
func (m *Manager) Rotate(algs ...string) ([]*Key, error) {
	if len(algs) == 0 {
		algs = Algs
	}
	for _, alg := range algs {
		if !slices.Contains(Algs, alg) {
			return nil, fmt.Errorf("keys: unknown algorithm %q (want %s)", alg, algList)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db != nil {
		return m.rotateStore(algs)
	}
	man, err := m.readManifest()
	if err != nil {
		return nil, err
	}
	now := m.now().UTC()
	// Drop entries past their grace period; their files are removed after the manifest is saved.
	var keep []manifestEntry
	var expired []manifestEntry
	for _, e := range man.Keys {
		if !e.RetiredAt.IsZero() && !now.Before(e.ExpiresAt) {
			expired = append(expired, e)
			continue
		}
		keep = append(keep, e)
	}
	man.Keys = keep
	var newIDs []string
	for _, alg := range algs {
		known := false
		for _, a := range Algs {
			known = known || a == alg
		}
		if !known {
			return nil, fmt.Errorf("keys: unknown algorithm %q (want %s)", alg, algList)
		}
		if old := activeEntry(man, alg); old != nil {
			old.RetiredAt = now
			old.ExpiresAt = now.Add(m.grace)
		}
		e, err := m.generate(alg)
		if err != nil {
			return nil, err
		}
		man.Keys = append(man.Keys, *e)
		newIDs = append(newIDs, e.ID)
	}
	if err := m.writeManifest(man); err != nil {
		return nil, err
	}
	for _, e := range expired {
		_ = os.Remove(filepath.Join(m.dir, filepath.Base(e.File)))
		if e.CertFile != "" {
			_ = os.Remove(filepath.Join(m.dir, filepath.Base(e.CertFile)))
		}
	}
	if err := m.load(man); err != nil {
		return nil, err
	}
	var out []*Key
	for _, id := range newIDs {
		k, _ := m.PublicKey(id)
		out = append(out, k)
	}
	return out, nil
}

// Reload re-reads the manifest when it changed on disk (a rotation by another process or replica
// sharing the directory), or the database's key set when it changed. It keeps the current keys on
// any error.
func (m *Manager) Reload() (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db != nil {
		return m.reloadStore()
	}
	st, err := os.Stat(filepath.Join(m.dir, manifestName))
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	if st.ModTime().Equal(m.snap.Load().modTime) {
		return false, nil
	}
	man, err := m.readManifest()
	if err != nil {
		return false, err
	}
	if err := m.load(man); err != nil {
		return false, err
	}
	return true, nil
}

// Thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	var canon string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		canon = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64(big.NewInt(int64(k.E)).Bytes()), b64(k.N.Bytes()))
	case *ecdsa.PublicKey:
		x, y := ecCoords(k)
		canon = fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, b64(x), b64(y))
	case ed25519.PublicKey:
		canon = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, b64(k))
	default:
		return "", fmt.Errorf("keys: unsupported public key %T", pub)
	}
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:]), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecCoords(k *ecdsa.PublicKey) (x, y []byte) {
	// Uncompressed point: 0x04 || X || Y, each 32 bytes for P-256.
	raw, err := k.Bytes()
	if err != nil || len(raw) != 65 {
		return nil, nil
	}
	return raw[1:33], raw[33:65]
}

// JWK is the public JSON Web Key form of a key.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// PublicJWK returns the key's public JWK.
func (k *Key) PublicJWK() JWK {
	j := JWK{Kid: k.ID, Use: "sig", Alg: k.Alg}
	switch p := k.Public().(type) {
	case *rsa.PublicKey:
		j.Kty, j.N, j.E = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		x, y := ecCoords(p)
		j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64(x), b64(y)
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(p) // RFC 8037
	}
	return j
}

func buildJWKS(keys []*Key) ([]byte, error) {
	set := struct {
		Keys []JWK `json:"keys"`
	}{Keys: []JWK{}}
	for _, k := range keys {
		if k.Alg == SAML {
			continue
		}
		set.Keys = append(set.Keys, k.PublicJWK())
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("keys: encode JWKS: %w", err)
	}
	return b, nil
}
