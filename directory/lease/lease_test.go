package lease

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/secretbox"
)

// stores runs a test on SQLite and, when QIAO_TEST_POSTGRES is set, on PostgreSQL.
func stores(t *testing.T, run func(t *testing.T, st *sqlstore.Store)) {
	box, err := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T, dsn string) *sqlstore.Store {
		st, err := sqlstore.Open(context.Background(), dsn, box)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	t.Run("sqlite", func(t *testing.T) { run(t, open(t, "sqlite://"+filepath.Join(t.TempDir(), "qiao.db"))) })
	t.Run("postgres", func(t *testing.T) {
		base := os.Getenv("QIAO_TEST_POSTGRES")
		if base == "" {
			t.Skip("QIAO_TEST_POSTGRES not set")
		}
		run(t, open(t, pgtemp.New(t, base, "qiao_lease")))
	})
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestAcquireHeldReleaseTakeOver(t *testing.T) {
	stores(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		a, err := Acquire(ctx, st, "job", "A", time.Minute)
		if err != nil || a.Epoch != 1 {
			t.Fatalf("first acquire: %+v, %v", a, err)
		}
		if _, err := Acquire(ctx, st, "job", "B", time.Minute); !errors.Is(err, ErrHeld) {
			t.Fatalf("second holder while held: %v, want ErrHeld", err)
		}
		if _, err := Acquire(ctx, st, "other-job", "B", time.Minute); err != nil {
			t.Fatalf("another name is another lease: %v", err)
		}
		if err := a.Renew(ctx); err != nil {
			t.Fatalf("renew by the holder: %v", err)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		b, err := Acquire(ctx, st, "job", "B", time.Minute)
		if err != nil || b.Epoch != 2 {
			t.Fatalf("acquire after release: %+v, %v (want epoch 2)", b, err)
		}
		if err := a.Renew(ctx); !errors.Is(err, ErrLost) {
			t.Fatalf("renew by the old holder: %v, want ErrLost", err)
		}
		row, err := st.GetLease(ctx, "job")
		if err != nil || row.Holder != "B" || row.Epoch != 2 {
			t.Fatalf("row: %+v, %v", row, err)
		}
	})
}

// A holder whose lease expired and was taken over cannot commit: its fenced transaction rolls
// back, the successor's commits.
func TestExpiredHolderIsFenced(t *testing.T) {
	stores(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		c := &clock{t: time.Unix(1_700_000_000, 0)}
		if err := st.PutEnterprise(ctx, &directory.Enterprise{ID: "e", Name: "E"}); err != nil {
			t.Fatal(err)
		}
		a, err := acquire(ctx, st, "job", "A", 30*time.Second, c.now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := acquire(ctx, st, "job", "B", 30*time.Second, c.now); !errors.Is(err, ErrHeld) {
			t.Fatalf("before expiry: %v, want ErrHeld", err)
		}
		c.add(31 * time.Second) // A paused past its TTL
		b, err := acquire(ctx, st, "job", "B", 30*time.Second, c.now)
		if err != nil || b.Epoch != a.Epoch+1 {
			t.Fatalf("take over after expiry: %+v, %v", b, err)
		}
		err = st.InTx(ctx, func(tx directory.Store) error {
			if err := tx.PutEnterprise(ctx, &directory.Enterprise{ID: "e", Name: "written by A"}); err != nil {
				return err
			}
			return a.Check(ctx, tx)
		})
		if !errors.Is(err, ErrLost) {
			t.Fatalf("A's fenced commit: %v, want ErrLost", err)
		}
		if e, _ := st.GetEnterprise(ctx, "e"); e.Name != "E" {
			t.Fatalf("A's write committed: %q", e.Name)
		}
		err = st.InTx(WithContext(ctx, b), func(tx directory.Store) error {
			if err := CheckContext(WithContext(ctx, b), tx); err != nil {
				return err
			}
			return tx.PutEnterprise(ctx, &directory.Enterprise{ID: "e", Name: "written by B"})
		})
		if err != nil {
			t.Fatalf("B's fenced commit: %v", err)
		}
		if err := a.Release(ctx); !errors.Is(err, ErrLost) {
			t.Fatalf("A releasing B's lease: %v, want ErrLost", err)
		}
		if row, _ := st.GetLease(ctx, "job"); row.Holder != "B" || row.ExpiresAt.IsZero() {
			t.Fatalf("A's release touched B's lease: %+v", row)
		}
	})
}

// Of many replicas acquiring an expired lease together, exactly one wins.
func TestConcurrentAcquireOneWins(t *testing.T) {
	stores(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		var wins atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := Acquire(ctx, st, "race", string(rune('a'+i)), time.Minute)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, ErrHeld):
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("acquire: %v", err)
		}
		if wins.Load() != 1 {
			t.Fatalf("%d holders won the lease, want 1", wins.Load())
		}
	})
}

// Keep renews while the job runs and cancels the job's context once the lease is taken over;
// Run releases it afterwards and refuses a second runner while it runs.
func TestKeepAndRun(t *testing.T) {
	stores(t, func(t *testing.T, st *sqlstore.Store) {
		ctx := context.Background()
		ran := false
		err := Run(ctx, st, "run", "A", time.Minute, func(ctx context.Context, l *Lease) error {
			ran = true
			if got, ok := FromContext(ctx); !ok || got != l {
				t.Error("the job's context does not carry its lease")
			}
			if err := Run(ctx, st, "run", "B", time.Minute, func(context.Context, *Lease) error { return nil }); !errors.Is(err, ErrHeld) {
				t.Errorf("second runner: %v, want ErrHeld", err)
			}
			return nil
		})
		if err != nil || !ran {
			t.Fatalf("run: %v (ran %v)", err, ran)
		}
		if row, _ := st.GetLease(ctx, "run"); !row.ExpiresAt.IsZero() {
			t.Fatalf("not released after the run: %+v", row)
		}

		c := &clock{t: time.Now()}
		a, err := acquire(ctx, st, "kept", "A", 300*time.Millisecond, c.now)
		if err != nil {
			t.Fatal(err)
		}
		jctx, stop := a.Keep(ctx)
		defer stop()
		// Renewals keep it: the row's expiry moves with the clock.
		c.add(time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for {
			row, _ := st.GetLease(ctx, "kept")
			if row.ExpiresAt.After(c.now()) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease not renewed: %+v", row)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Taken over behind its back (released by force here): the job's context ends with ErrLost.
		if _, err := st.DB().ExecContext(ctx, `UPDATE leases SET holder = 'B', epoch = epoch + 1 WHERE name = 'kept'`); err != nil {
			t.Fatal(err)
		}
		select {
		case <-jctx.Done():
			if !errors.Is(context.Cause(jctx), ErrLost) {
				t.Fatalf("cause %v, want ErrLost", context.Cause(jctx))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the job's context was not cancelled after the lease was taken over")
		}
	})
}
