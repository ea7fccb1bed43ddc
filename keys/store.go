package keys

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/lease"
)

// The key set in the database. Every replica reads the same rows (the private keys sealed with the
// master key by the store), so a replica needs only the DSNs and the master key. Writes — the
// first set, an import, a rotation — run under the lease LeaseName, checked in their transaction,
// so two replicas starting or rotating together never make two active keys of one algorithm.
// Replicas pick a rotation up through Reload, which the gateway calls every 15 s.

// LeaseName is the lease a replica holds while it writes the key set.
const LeaseName = "signing-keys"

// writeWait bounds how long a writer waits for another replica's write of the key set.
const writeWait = 30 * time.Second

// OpenStore loads the key set stored in st, making it first when there is none: from the key files
// in importDir when it holds a manifest (the keys of a gateway that kept them on disk; imported
// once, the files are left as they are), otherwise generated.
func OpenStore(ctx context.Context, st directory.Store, importDir string, opts ...Option) (*Manager, error) {
	m := &Manager{dir: importDir, db: st, grace: DefaultGrace, now: time.Now, rsaBits: 2048}
	for _, o := range opts {
		o(m)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rows, err := st.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if missing(rows, m.now()) {
		if err := m.write(ctx, func(tx directory.Store, rows []*directory.SigningKey) error {
			if len(rows) == 0 && importDir != "" {
				n, err := m.importDir(ctx, tx)
				if err != nil {
					return err
				}
				if n > 0 {
					if rows, err = tx.ListSigningKeys(ctx); err != nil {
						return err
					}
				}
			}
			now := m.now()
			for _, alg := range Algs {
				if activeRow(rows, alg, now) == nil {
					if _, err := m.addNew(ctx, tx, alg); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
		if rows, err = st.ListSigningKeys(ctx); err != nil {
			return nil, fmt.Errorf("keys: %w", err)
		}
	}
	if err := m.loadRows(rows); err != nil {
		return nil, err
	}
	return m, nil
}

// OpenStoreExisting loads the key set stored in st without making one: ErrNoKeys when there is
// none (for commands that look at keys a gateway made).
func OpenStoreExisting(ctx context.Context, st directory.Store, opts ...Option) (*Manager, error) {
	m := &Manager{db: st, grace: DefaultGrace, now: time.Now, rsaBits: 2048}
	for _, o := range opts {
		o(m)
	}
	rows, err := st.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("keys: %w in the database", ErrNoKeys)
	}
	if err := m.loadRows(rows); err != nil {
		return nil, err
	}
	return m, nil
}

// missing reports whether some algorithm has no active key.
func missing(rows []*directory.SigningKey, now time.Time) bool {
	for _, alg := range Algs {
		if activeRow(rows, alg, now) == nil {
			return true
		}
	}
	return false
}

func activeRow(rows []*directory.SigningKey, alg string, _ time.Time) *directory.SigningKey {
	for _, r := range rows {
		if r.Alg == alg && r.RetiredAt.IsZero() {
			return r
		}
	}
	return nil
}

// write runs fn in one transaction under the key set's lease, with the rows as they are inside it.
func (m *Manager) write(ctx context.Context, fn func(tx directory.Store, rows []*directory.SigningKey) error) error {
	deadline := time.Now().Add(writeWait)
	var l *lease.Lease
	for {
		var err error
		l, err = lease.Acquire(ctx, m.db, LeaseName, lease.Holder(), writeWait)
		if err == nil {
			break
		}
		if !errors.Is(err, lease.ErrHeld) {
			return fmt.Errorf("keys: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("keys: another replica has been writing the key set for %s: %w", writeWait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	return m.db.InTx(ctx, func(tx directory.Store) error {
		if err := l.Check(ctx, tx); err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		rows, err := tx.ListSigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		return fn(tx, rows)
	})
}

func (m *Manager) addNew(ctx context.Context, tx directory.Store, alg string) (string, error) {
	mat, err := m.newMaterial(alg)
	if err != nil {
		return "", err
	}
	if err := tx.AddSigningKey(ctx, &directory.SigningKey{ID: mat.kid, Alg: alg, PrivateDER: mat.der, CertDER: mat.certDER, CreatedAt: mat.created}); err != nil {
		return "", fmt.Errorf("keys: store new %s key: %w", alg, err)
	}
	return mat.kid, nil
}

// importDir copies the key files of m.dir (a keys directory with its manifest) into the database
// and reports how many keys it imported (0: no manifest there).
func (m *Manager) importDir(ctx context.Context, tx directory.Store) (int, error) {
	man, err := m.readManifest()
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	now := m.now()
	n := 0
	for _, e := range man.Keys {
		if !e.RetiredAt.IsZero() && !now.Before(e.ExpiresAt) {
			continue
		}
		k, err := m.readKey(e)
		if err != nil {
			return 0, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
		if err != nil {
			return 0, fmt.Errorf("keys: encode %s: %w", e.ID, err)
		}
		row := &directory.SigningKey{ID: k.ID, Alg: k.Alg, PrivateDER: der, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt, ExpiresAt: k.ExpiresAt}
		if k.Cert != nil {
			row.CertDER = k.Cert.Raw
		}
		if err := tx.AddSigningKey(ctx, row); err != nil {
			return 0, fmt.Errorf("keys: import %s: %w", e.ID, err)
		}
		n++
	}
	return n, nil
}

// loadRows makes the stored rows the current key set.
func (m *Manager) loadRows(rows []*directory.SigningKey) error {
	now := m.now()
	snap := &snapshot{active: map[string]*Key{}, version: fingerprint(rows)}
	for _, r := range rows {
		if !r.RetiredAt.IsZero() && !now.Before(r.ExpiresAt) {
			continue
		}
		k, err := parseKey(r.ID, r.Alg, r.PrivateDER, r.CertDER, "stored key "+r.ID, "the certificate of stored key "+r.ID)
		if err != nil {
			return err
		}
		k.CreatedAt, k.RetiredAt, k.ExpiresAt = r.CreatedAt, r.RetiredAt, r.ExpiresAt
		if k.Active() {
			if _, dup := snap.active[k.Alg]; dup {
				return fmt.Errorf("keys: the database holds two active %s keys", k.Alg)
			}
			snap.active[k.Alg] = k
		}
		snap.published = append(snap.published, k)
	}
	return m.publish(snap)
}

// fingerprint identifies a state of the stored key set (which keys, retired when).
func fingerprint(rows []*directory.SigningKey) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.ID)
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(r.RetiredAt.UnixMilli(), 10))
		b.WriteByte(',')
	}
	return b.String()
}

func (m *Manager) rotateStore(algs []string) ([]*Key, error) {
	ctx, cancel := context.WithTimeout(context.Background(), writeWait+30*time.Second)
	defer cancel()
	var newIDs []string
	err := m.write(ctx, func(tx directory.Store, rows []*directory.SigningKey) error {
		now := m.now().UTC()
		for _, r := range rows {
			if !r.RetiredAt.IsZero() && !now.Before(r.ExpiresAt) {
				if err := tx.DeleteSigningKey(ctx, r.ID); err != nil {
					return fmt.Errorf("keys: delete expired key %s: %w", r.ID, err)
				}
			}
		}
		for _, alg := range algs {
			if old := activeRow(rows, alg, now); old != nil {
				if err := tx.RetireSigningKey(ctx, old.ID, now, now.Add(m.grace)); err != nil {
					return fmt.Errorf("keys: retire %s: %w", old.ID, err)
				}
			}
			id, err := m.addNew(ctx, tx, alg)
			if err != nil {
				return err
			}
			newIDs = append(newIDs, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows, err := m.db.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if err := m.loadRows(rows); err != nil {
		return nil, err
	}
	var out []*Key
	for _, id := range newIDs {
		k, _ := m.PublicKey(id)
		out = append(out, k)
	}
	return out, nil
}

func (m *Manager) reloadStore() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := m.db.ListSigningKeys(ctx)
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	cur := m.snap.Load()
	// A retired key whose grace ended must also leave the published set, so the clock matters too.
	if fingerprint(rows) == cur.version && !graceEnded(cur, m.now()) {
		return false, nil
	}
	if err := m.loadRows(rows); err != nil {
		return false, err
	}
	return true, nil
}

func graceEnded(s *snapshot, now time.Time) bool {
	for _, k := range s.published {
		if !k.Active() && !now.Before(k.ExpiresAt) {
			return true
		}
	}
	return false
}

// Export writes the whole stored key set (retired keys included) to dir as a keys directory:
// one PEM file per key (0600), the SAML certificates, and the manifest. OpenStore imports such a
// directory into an empty database, so it is the backup and the way to move keys between
// installations. dir must not exist yet or be empty.
func (m *Manager) Export(ctx context.Context, dir string) (int, error) {
	if m.db == nil {
		return 0, errors.New("keys: export reads the key set in the database; this one is a keys directory already")
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return 0, fmt.Errorf("keys: %s is not empty: export into a new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("keys: create %s: %w", dir, err)
	}
	rows, err := m.db.ListSigningKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("keys: %w", err)
	}
	out := &Manager{dir: dir}
	man := &manifest{}
	for _, r := range rows {
		e := manifestEntry{ID: r.ID, Alg: r.Alg, File: r.ID + ".pem", CreatedAt: r.CreatedAt.UTC()}
		if !r.RetiredAt.IsZero() {
			e.RetiredAt, e.ExpiresAt = r.RetiredAt.UTC(), r.ExpiresAt.UTC()
		}
		if err := writeNew(filepath.Join(dir, e.File), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: r.PrivateDER})); err != nil {
			return 0, err
		}
		if len(r.CertDER) > 0 {
			e.CertFile = r.ID + ".crt"
			if err := writeNew(filepath.Join(dir, e.CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.CertDER})); err != nil {
				return 0, err
			}
		}
		man.Keys = append(man.Keys, e)
	}
	slices.SortStableFunc(man.Keys, func(a, b manifestEntry) int { return a.CreatedAt.Compare(b.CreatedAt) })
	if err := out.writeManifest(man); err != nil {
		return 0, err
	}
	return len(man.Keys), nil
}
