// Package lease runs a singleton job on one replica at a time, with fencing, on the database the
// replicas share (SQLite or PostgreSQL, through directory.LeaseStore).
//
// A lease has a name ("sync-scheduler", "event-inbox", …), a holder (one per process: Holder()),
// an epoch that grows by one on every acquisition, and an expiry. The holder renews it while the
// job runs (Keep); a holder that stops renewing — killed, partitioned, paused — loses it once it
// expires, and the next Acquire by any replica takes it over under a new epoch.
//
// Expiry alone cannot stop a holder that does not know it lost the lease (a long GC pause, a
// stalled network) from writing after its successor started. So a job commits only through
// fencing: inside the job's own transaction it calls Check (or CheckContext with a lease carried
// by the context), which verifies the holder and the epoch and keeps the lease from being taken
// over until that transaction ends. A holder that lost its lease gets ErrLost there and its
// transaction rolls back; nothing it planned is written.
//
// Typical use:
//
//	err := lease.Run(ctx, st, "sync-scheduler", lease.Holder(), 30*time.Second, func(ctx context.Context, l *lease.Lease) error {
//		// ctx is cancelled if the lease is lost; it carries l for CheckContext.
//		return st.InTx(ctx, func(tx directory.Store) error {
//			if err := lease.CheckContext(ctx, tx); err != nil {
//				return err
//			}
//			… writes …
//		})
//	})
//	// errors.Is(err, lease.ErrHeld): another replica runs the job now.
//
// Clocks: expiry is judged by the acquiring replica's clock against the time the holder wrote, so
// replicas' clocks should agree to well within the TTL; safety never depends on them (fencing
// uses the epoch, not time).
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

var (
	// ErrHeld means another holder holds the lease now.
	ErrHeld = errors.New("lease held by another replica")
	// ErrLost means this holder no longer holds the lease (it expired and another took it over,
	// or it was released): the job must not commit.
	ErrLost = errors.New("lease lost")
)

var (
	holderOnce sync.Once
	holder     string
)

// Holder names this process as a lease holder: host, pid and a random suffix (a restarted process
// with the same pid is another holder).
func Holder() string {
	holderOnce.Do(func() {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		holder = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
	})
	return holder
}

// Lease is one acquisition of a named lease.
type Lease struct {
	Name   string
	Holder string
	Epoch  int64
	TTL    time.Duration

	st  directory.LeaseStore
	now func() time.Time
}

// Acquire takes the named lease for ttl if nobody holds it; ErrHeld if somebody does.
func Acquire(ctx context.Context, st directory.LeaseStore, name, holder string, ttl time.Duration) (*Lease, error) {
	return acquire(ctx, st, name, holder, ttl, time.Now)
}

func acquire(ctx context.Context, st directory.LeaseStore, name, holder string, ttl time.Duration, now func() time.Time) (*Lease, error) {
	t := now()
	epoch, err := st.AcquireLease(ctx, name, holder, t, t.Add(ttl))
	if errors.Is(err, directory.ErrConflict) {
		return nil, fmt.Errorf("%s: %w", name, ErrHeld)
	}
	if err != nil {
		return nil, err
	}
	return &Lease{Name: name, Holder: holder, Epoch: epoch, TTL: ttl, st: st, now: now}, nil
}

// Renew extends the lease by its TTL from now; ErrLost if it was taken over or released.
func (l *Lease) Renew(ctx context.Context) error {
	err := l.st.RenewLease(ctx, l.Name, l.Holder, l.Epoch, l.now().Add(l.TTL))
	if errors.Is(err, directory.ErrNotFound) {
		return fmt.Errorf("%s (epoch %d): %w", l.Name, l.Epoch, ErrLost)
	}
	return err
}

// Release gives the lease up so another replica can take it at once (ErrLost if it was already
// lost: harmless, the successor holds it).
func (l *Lease) Release(ctx context.Context) error {
	err := l.st.ReleaseLease(ctx, l.Name, l.Holder, l.Epoch)
	if errors.Is(err, directory.ErrNotFound) {
		return fmt.Errorf("%s (epoch %d): %w", l.Name, l.Epoch, ErrLost)
	}
	return err
}

// Check fences a commit: called with the job's transaction (the Store InTx passed to it), it
// returns ErrLost unless this holder still holds the lease at this epoch, and keeps it from being
// taken over until the transaction ends. Return its error from the transaction so it rolls back.
func (l *Lease) Check(ctx context.Context, tx directory.LeaseStore) error {
	err := tx.CheckLease(ctx, l.Name, l.Holder, l.Epoch)
	if errors.Is(err, directory.ErrNotFound) {
		return fmt.Errorf("%s (epoch %d): %w", l.Name, l.Epoch, ErrLost)
	}
	return err
}

type ctxKey struct{}

// WithContext returns ctx carrying l, for CheckContext in code that runs under the lease without
// knowing it (a sync run started by the scheduler).
func WithContext(ctx context.Context, l *Lease) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// FromContext returns the lease ctx carries, if any.
func FromContext(ctx context.Context) (*Lease, bool) {
	l, ok := ctx.Value(ctxKey{}).(*Lease)
	return l, ok
}

// CheckContext is Check for the lease ctx carries; without one (a manual run from the CLI or the
// admin API, which holds no lease) there is nothing to fence and it returns nil.
func CheckContext(ctx context.Context, tx directory.LeaseStore) error {
	if l, ok := FromContext(ctx); ok {
		return l.Check(ctx, tx)
	}
	return nil
}

// Keep renews the lease every TTL/3 until stop is called, and returns a context, derived from ctx
// and carrying l, that is cancelled when a renewal finds the lease lost. stop waits for the
// renewer to end.
func (l *Lease) Keep(ctx context.Context) (context.Context, func()) {
	jctx, cancel := context.WithCancelCause(WithContext(ctx, l))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(l.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-jctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(jctx, l.TTL/3)
			err := l.Renew(rctx)
			rcancel()
			// Only a definite loss stops the job. A renewal that failed otherwise (the database
			// busy with the job's own long transaction, or briefly unreachable) is retried: if the
			// lease was taken over meanwhile, the job's fenced commit fails anyway.
			if errors.Is(err, ErrLost) {
				cancel(err)
				return
			}
		}
	}()
	return jctx, func() {
		close(done)
		wg.Wait()
		cancel(nil)
	}
}

// Run acquires the named lease, runs fn under it (renewed while it runs; fn's context is cancelled
// if the lease is lost and carries it for CheckContext), and releases it. ErrHeld (unwrapped with
// errors.Is) when another holder holds it: fn did not run.
func Run(ctx context.Context, st directory.LeaseStore, name, holder string, ttl time.Duration, fn func(ctx context.Context, l *Lease) error) error {
	l, err := Acquire(ctx, st, name, holder, ttl)
	if err != nil {
		return err
	}
	jctx, stop := l.Keep(ctx)
	err = fn(jctx, l)
	stop()
	if cause := context.Cause(jctx); errors.Is(cause, ErrLost) && err != nil {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = l.Release(rctx)
	return err
}

// Loop runs fn under the named lease every interval (the first time after one interval) until ctx
// ends, on whichever replica takes the
// lease first for that turn; the others skip the turn. Errors of fn are passed to onErr (nil:
// ignored); ErrHeld is not an error.
func Loop(ctx context.Context, st directory.LeaseStore, name, holder string, ttl, interval time.Duration,
	fn func(ctx context.Context) error, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := Run(ctx, st, name, holder, ttl, func(ctx context.Context, _ *Lease) error { return fn(ctx) })
		if err != nil && !errors.Is(err, ErrHeld) && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	}
}
