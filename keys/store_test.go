package keys

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

// dbs runs a test on SQLite and, when QIAO_TEST_POSTGRES is set, on PostgreSQL; open returns a
// new connection to the test's database (one per simulated replica).
func dbs(t *testing.T, run func(t *testing.T, open func() *sqlstore.Store)) {
	box, err := secretbox.New(bytes.Repeat([]byte{9}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	opener := func(t *testing.T, dsn string) func() *sqlstore.Store {
		return func() *sqlstore.Store {
			st, err := sqlstore.Open(context.Background(), dsn, box)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
	}
	t.Run("sqlite", func(t *testing.T) { run(t, opener(t, "sqlite://"+filepath.Join(t.TempDir(), "qiao.db"))) })
	t.Run("postgres", func(t *testing.T) {
		base := os.Getenv("QIAO_TEST_POSTGRES")
		if base == "" {
			t.Skip("QIAO_TEST_POSTGRES not set")
		}
		run(t, opener(t, pgtemp.New(t, base, "qiao_keys")))
	})
}

func activeIDs(t *testing.T, m *Manager) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, alg := range Algs {
		k, err := m.Signing(alg)
		if err != nil {
			t.Fatal(err)
		}
		out[alg] = k.ID
	}
	return out
}

func sameKeys(t *testing.T, a, b map[string]string) {
	t.Helper()
	for alg, id := range a {
		if b[alg] != id {
			t.Fatalf("%s: %s vs %s", alg, id, b[alg])
		}
	}
}

// Replicas starting together on an empty database make one key set, and each loads it.
func TestStoreFirstSetOnceAcrossReplicas(t *testing.T) {
	dbs(t, func(t *testing.T, open func() *sqlstore.Store) {
		ctx := context.Background()
		stores := []*sqlstore.Store{open(), open(), open()}
		ms := make([]*Manager, len(stores))
		var wg sync.WaitGroup
		for i, st := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := OpenStore(ctx, st, "", WithRSABits(1024))
				if err != nil {
					t.Error(err)
					return
				}
				ms[i] = m
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		rows, err := stores[0].ListSigningKeys(ctx)
		if err != nil || len(rows) != len(Algs) {
			t.Fatalf("stored keys: %d, %v; want one per algorithm", len(rows), err)
		}
		want := activeIDs(t, ms[0])
		for _, m := range ms[1:] {
			sameKeys(t, want, activeIDs(t, m))
		}
		// At rest the private key is sealed: its DER is nowhere in the row.
		var sealed []byte
		if err := stores[0].DB().QueryRowContext(ctx, `SELECT private_key FROM signing_keys WHERE kid = $1`, want[ES256]).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		k, _ := ms[0].Signing(ES256)
		der, _ := x509.MarshalPKCS8PrivateKey(k.Signer)
		if bytes.Contains(sealed, der) || bytes.Contains(sealed, der[len(der)-32:]) {
			t.Fatal("the private key is stored in plaintext")
		}
	})
}

// A rotation on one replica reaches another through Reload; the old key stays published.
func TestStoreRotateReload(t *testing.T) {
	dbs(t, func(t *testing.T, open func() *sqlstore.Store) {
		ctx := context.Background()
		a, err := OpenStore(ctx, open(), "", WithRSABits(1024))
		if err != nil {
			t.Fatal(err)
		}
		b, err := OpenStore(ctx, open(), "", WithRSABits(1024))
		if err != nil {
			t.Fatal(err)
		}
		before := activeIDs(t, b)
		if changed, err := b.Reload(); err != nil || changed {
			t.Fatalf("reload without a change: %v, %v", changed, err)
		}
		rotated, err := a.Rotate(RS256)
		if err != nil || len(rotated) != 1 {
			t.Fatalf("rotate: %v, %v", rotated, err)
		}
		if changed, err := b.Reload(); err != nil || !changed {
			t.Fatalf("reload after a rotation: %v, %v", changed, err)
		}
		after := activeIDs(t, b)
		if after[RS256] != rotated[0].ID || after[ES256] != before[ES256] {
			t.Fatalf("after reload: %v (rotated %s, before %v)", after, rotated[0].ID, before)
		}
		old, ok := b.PublicKey(before[RS256])
		if !ok || old.Active() {
			t.Fatalf("the rotated-out key is not published as retired: %+v", old)
		}
		if _, err := a.Rotate("HS256"); err == nil {
			t.Fatal("rotating an unknown algorithm succeeded")
		}
	})
}

// The keys of a gateway that kept them on disk are imported once; export writes them back out in
// the same form, and an empty database imports the export with the same key IDs.
func TestStoreImportAndExport(t *testing.T) {
	dbs(t, func(t *testing.T, open func() *sqlstore.Store) {
		ctx := context.Background()
		dir := t.TempDir()
		files, err := Open(dir, WithRSABits(1024))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := files.Rotate(ES256); err != nil { // a retired key in grace travels too
			t.Fatal(err)
		}
		want := activeIDs(t, files)
		st := open()
		m, err := OpenStore(ctx, st, dir, WithRSABits(1024))
		if err != nil {
			t.Fatal(err)
		}
		sameKeys(t, want, activeIDs(t, m))
		if len(m.Published()) != len(files.Published()) {
			t.Fatalf("published %d keys, the directory %d", len(m.Published()), len(files.Published()))
		}
		// A second start with another directory imports nothing: the database has its keys.
		other := t.TempDir()
		if _, err := Open(other, WithRSABits(1024)); err != nil {
			t.Fatal(err)
		}
		again, err := OpenStore(ctx, open(), other, WithRSABits(1024))
		if err != nil {
			t.Fatal(err)
		}
		sameKeys(t, want, activeIDs(t, again))

		out := filepath.Join(t.TempDir(), "backup")
		n, err := m.Export(ctx, out)
		if err != nil || n != len(files.Published()) {
			t.Fatalf("export: %d, %v", n, err)
		}
		if _, err := m.Export(ctx, out); err == nil {
			t.Fatal("export into a non-empty directory succeeded")
		}
		if fi, err := os.Stat(filepath.Join(out, want[RS256]+".pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("exported key file: %v, %v", fi, err)
		}
		restored, err := OpenExisting(out)
		if err != nil {
			t.Fatal(err)
		}
		sameKeys(t, want, activeIDs(t, restored))
	})
}

func TestStoreExistingNeedsKeys(t *testing.T) {
	dbs(t, func(t *testing.T, open func() *sqlstore.Store) {
		var st directory.Store = open()
		if _, err := OpenStoreExisting(context.Background(), st); err == nil {
			t.Fatal("an empty database has a key set")
		}
	})
}
