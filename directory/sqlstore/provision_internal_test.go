package sqlstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

// The outbox triggers exist only while some enterprise has a provisioning target: none after
// the migrations, all nine (six on PostgreSQL) with the first target, none again without.
func TestOutboxTriggersFollowTargets(t *testing.T) {
	bx, _ := secretbox.New(bytes.Repeat([]byte{3}, secretbox.KeySize))
	dsns := map[string]string{"sqlite": "sqlite://" + filepath.Join(t.TempDir(), "q.db")}
	if pg := os.Getenv("QIAO_TEST_POSTGRES"); pg != "" {
		dsns["postgres"] = pgtemp.New(t, pg, "qiao_trig")
	}
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, dsn, bx)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			count := func() int {
				q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'provision%'`
				if s.dialect == Postgres {
					q = `SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'provision%'`
				}
				var n int
				if err := s.q.QueryRowContext(ctx, q).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			creates, _, err := s.outboxTriggers()
			if err != nil || (s.dialect == SQLite && len(creates) != 9) || (s.dialect == Postgres && len(creates) != 6) {
				t.Fatalf("triggers in the migration: %d, %v", len(creates), err)
			}
			if n := count(); n != 0 {
				t.Fatalf("%d triggers without a target", n)
			}
			if err := s.PutEnterprise(ctx, &directory.Enterprise{ID: "e", Name: "E"}); err != nil {
				t.Fatal(err)
			}
			if err := s.PutProvisionTarget(ctx, &directory.ProvisionTarget{EnterpriseID: "e", Kind: "wecom", Settings: directory.DefaultProvisionSettings()}); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != len(creates) {
				t.Fatalf("%d triggers with a target, want %d", n, len(creates))
			}
			if err := s.PutProvisionTarget(ctx, &directory.ProvisionTarget{EnterpriseID: "e", Kind: "wecom", Enabled: true, Settings: directory.DefaultProvisionSettings()}); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteProvisionTarget(ctx, "e"); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != 0 {
				t.Fatalf("%d triggers after the last target went", n)
			}
		})
	}
}
