package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/directory/storetest"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

func box(t *testing.T, b byte) *secretbox.Box {
	t.Helper()
	bx, err := secretbox.New(bytes.Repeat([]byte{b}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return bx
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) directory.Store {
		s, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "qiao.db"), box(t, 1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// newPostgresDB creates a throwaway database on the server QIAO_TEST_POSTGRES names and returns
// its DSN; it is dropped when the test ends.
func newPostgresDB(t *testing.T) string {
	t.Helper()
	base := os.Getenv("QIAO_TEST_POSTGRES")
	if base == "" {
		t.Skip("QIAO_TEST_POSTGRES not set: PostgreSQL conformance suite skipped (CI sets it, e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	return pgtemp.New(t, base, "qiao_test")
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) directory.Store {
		s, err := sqlstore.Open(context.Background(), newPostgresDB(t), box(t, 1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestWrongMasterKeyStopsOpen(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "qiao.db")
	s, err := sqlstore.Open(context.Background(), dsn, box(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := sqlstore.Open(context.Background(), dsn, box(t, 2)); !errors.Is(err, sqlstore.ErrWrongMasterKey) {
		t.Fatalf("open with another master key = %v", err)
	}
	// Re-opening with the right key works and migrations are idempotent.
	s, err = sqlstore.Open(context.Background(), dsn, box(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestParseDSN(t *testing.T) {
	for dsn, want := range map[string]sqlstore.Dialect{
		"sqlite://data/qiao.db": sqlstore.SQLite, "sqlite:x.db": sqlstore.SQLite,
		"postgres://u@h/db": sqlstore.Postgres, "postgresql://u:p@h:5432/db?sslmode=disable": sqlstore.Postgres,
	} {
		if d, _, err := sqlstore.ParseDSN(dsn); err != nil || d != want {
			t.Errorf("ParseDSN(%q) = %v, %v", dsn, d, err)
		}
	}
	_, _, err := sqlstore.ParseDSN("mysql://root:hunter2@h/db")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("unsupported DSN error = %v (must not echo the password)", err)
	}
}

func TestUnreachablePostgres(t *testing.T) {
	_, err := sqlstore.Open(context.Background(), "postgres://postgres:pw@127.0.0.1:1/x?sslmode=disable&connect_timeout=1", box(t, 1))
	if err == nil || strings.Contains(err.Error(), "pw@") {
		t.Fatalf("unreachable database: %v", err)
	}
}

// A read-only open changes nothing: a missing database stays missing, an unmigrated one is
// refused, and writes through the connection fail.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "sub", "qiao.db")
	if _, err := sqlstore.OpenReadOnly(ctx, "sqlite://"+missing, box(t, 1)); !errors.Is(err, sqlstore.ErrNoDatabase) {
		t.Fatalf("missing SQLite file: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a read-only open created the database directory")
	}
	dsns := map[string]string{"sqlite": "sqlite://" + filepath.Join(t.TempDir(), "qiao.db")}
	if os.Getenv("QIAO_TEST_POSTGRES") != "" {
		dsns["postgres"] = newPostgresDB(t)
	}
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			if name == "postgres" {
				if _, err := sqlstore.OpenReadOnly(ctx, dsn, box(t, 1)); err == nil {
					t.Fatal("an unmigrated database was opened read-only")
				}
			}
			rw, err := sqlstore.Open(ctx, dsn, box(t, 1))
			if err != nil {
				t.Fatal(err)
			}
			if err := rw.PutEnterprise(ctx, &directory.Enterprise{ID: "acme", Name: "Acme"}); err != nil {
				t.Fatal(err)
			}
			rw.Close()
			ro, err := sqlstore.OpenReadOnly(ctx, dsn, box(t, 1))
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			if e, err := ro.GetEnterprise(ctx, "acme"); err != nil || e.Name != "Acme" {
				t.Fatalf("read through a read-only store: %v %v", e, err)
			}
			if err := ro.PutEnterprise(ctx, &directory.Enterprise{ID: "other", Name: "Other"}); err == nil {
				t.Fatal("a write through a read-only store succeeded")
			}
			if _, err := sqlstore.OpenReadOnly(ctx, dsn, box(t, 2)); !errors.Is(err, sqlstore.ErrWrongMasterKey) {
				t.Fatalf("wrong master key, read-only: %v", err)
			}
		})
	}
}

// A burst's connections stay open for the next one: closing those beyond the idle limit on
// release made every burst dial (and PostgreSQL fork) them again.
func TestPostgresPoolKeepsBurstConnections(t *testing.T) {
	s, err := sqlstore.Open(context.Background(), newPostgresDB(t), box(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DB()
	burst := func() {
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := db.ExecContext(context.Background(), "SELECT pg_sleep(0.1)"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	burst()
	first := db.Stats()
	if first.OpenConnections < 2 {
		t.Fatalf("the burst ran on %d connection(s)", first.OpenConnections)
	}
	burst()
	st := db.Stats()
	if st.MaxIdleClosed != 0 || st.OpenConnections < first.OpenConnections {
		t.Fatalf("after two bursts: %d connections closed for the idle limit, %d open (after the first: %d)",
			st.MaxIdleClosed, st.OpenConnections, first.OpenConnections)
	}
}
