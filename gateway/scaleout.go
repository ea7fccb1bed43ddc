package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/qiao-gateway/qiao/directory/lease"
)

// Lease names of the singleton jobs: whichever replica takes one runs that turn of the job, the
// others skip it (directory/lease).
const (
	LeaseSyncScheduler = "sync-scheduler"
	LeaseEventInbox    = "event-inbox"
	LeaseTokenSweep    = "refresh-token-sweep"
)

// leaseTTLs: a scheduled sync renews its lease (jobTimes.SyncLeaseTTL, 2 minutes) every TTL/3
// while it reads and applies; a replica killed mid-run leaves the lease to expire, after which the
// next turn on another replica runs.
const (
	eventLeaseTTL = 30 * time.Second
	sweepLeaseTTL = time.Minute
)

// startJobs starts the background work of a serving gateway. The singleton jobs run under leases,
// so N replicas run each once: the sync scheduler, the event inbox worker and the refresh-token
// sweep. Access jobs are claimed row by row (ClaimAccessJobs), so every replica works them; the
// key watcher runs everywhere (each replica loads the shared keys itself).
func (g *Gateway) startJobs(ctx context.Context) {
	holder := lease.Holder()
	g.goBackground(func() { g.watchHealth(ctx) }) // readyz.go
	g.goBackground(func() { g.watchKeys(ctx) })
	if g.Config.SyncScheduler == nil || *g.Config.SyncScheduler {
		g.goBackground(func() {
			lease.Loop(ctx, g.Store, LeaseSyncScheduler, holder, jobTimes.SyncLeaseTTL, jobTimes.SchedulerTick,
				func(ctx context.Context) error { g.Sync.Due(ctx, time.Now()); return nil },
				func(err error) { g.Log.Warn("sync scheduler", "err", err) })
		})
	}
	// The inbox worker resumes whatever was stored before a restart, then applies new events as
	// they arrive — on this replica when it holds the inbox's lease for the turn, otherwise on the
	// one that does (a turn is one drain; an event stored during another's drain waits at most a
	// tick).
	g.goBackground(func() { g.processEvents(ctx, holder, time.Second) })
	// Access jobs (a source closed or deleted, an app disabled): queued by config apply, the CLI or
	// another replica, run by whichever replica claims them first.
	g.goBackground(func() { g.Access.ProcessJobs(ctx, g.AccessNotify, time.Second) })
	g.goBackground(func() {
		lease.Loop(ctx, g.Store, LeaseTokenSweep, holder, sweepLeaseTTL, time.Hour,
			func(ctx context.Context) error { g.sweepRefreshTokensOnce(ctx); return nil }, nil)
	})
}

// processEvents drains the event inbox under its lease, at once when notified and every interval.
func (g *Gateway) processEvents(ctx context.Context, holder string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := lease.Run(ctx, g.Store, LeaseEventInbox, holder, eventLeaseTTL, func(ctx context.Context, _ *lease.Lease) error {
			g.Sync.DrainEvents(ctx)
			return nil
		})
		if err != nil && !errors.Is(err, lease.ErrHeld) && ctx.Err() == nil {
			g.Log.Warn("event inbox", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-g.eventNotify:
		case <-t.C:
		}
	}
}

// sweepRefreshTokensOnce deletes refresh tokens a day after they expired (until then a presented
// expired token is still recognised as ours and refused as expired).
func (g *Gateway) sweepRefreshTokensOnce(ctx context.Context) {
	if n, err := g.Store.DeleteExpiredRefreshTokens(ctx, time.Now().Add(-24*time.Hour)); err != nil {
		g.Log.Warn("delete expired refresh tokens", "err", err)
	} else if n > 0 {
		g.Log.Info("deleted expired refresh tokens", "count", n)
	}
}
