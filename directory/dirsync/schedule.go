package dirsync

import (
	"context"
	"errors"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

// Due runs the tasks that are due at now: automatic synchronization every cycle_hours, and the
// daily scheduled verification at verify_at (local time). Each source's lock keeps replicas from
// running one task twice; a source already running is skipped.
func (e *Engine) Due(ctx context.Context, now time.Time) {
	ents, err := e.Store.ListEnterprises(ctx)
	if err != nil {
		e.log().Warn("scheduler: list enterprises", "err", err)
		return
	}
	for _, ent := range ents {
		srcs, err := e.Store.ListSources(ctx, ent.ID)
		if err != nil {
			e.log().Warn("scheduler: list sources", "enterprise", ent.ID, "err", err)
			continue
		}
		for _, src := range srcs {
			if !src.Enabled || src.Kind == directory.KindLocal || ctx.Err() != nil {
				continue
			}
			if trig, ok := e.due(ctx, src, now); ok {
				_, err := e.Run(ctx, src.EnterpriseID, src.ID, Options{Trigger: trig})
				switch {
				case errors.Is(err, ErrBusy):
				case err != nil:
					e.log().Warn("scheduled sync failed", "enterprise", src.EnterpriseID, "source", src.ID, "trigger", trig, "err", err)
				default:
					e.log().Info("scheduled sync done", "enterprise", src.EnterpriseID, "source", src.ID, "trigger", trig)
				}
			}
		}
	}
}

func (e *Engine) due(ctx context.Context, src *directory.IdentitySource, now time.Time) (directory.Trigger, bool) {
	tasks, err := e.Store.ListSyncTasks(ctx, src.EnterpriseID, src.ID, 50)
	if err != nil {
		return "", false
	}
	if at, err := time.ParseInLocation("15:04", src.Sync.VerifyAt, now.Location()); src.Sync.VerifyAt != "" && err == nil {
		slot := time.Date(now.Year(), now.Month(), now.Day(), at.Hour(), at.Minute(), 0, 0, now.Location())
		if !now.Before(slot) {
			done := false
			for _, t := range tasks {
				if t.Trigger == directory.TriggerVerify && !t.StartedAt.Before(slot) {
					done = true
					break
				}
			}
			if !done {
				return directory.TriggerVerify, true
			}
		}
	}
	if !src.Sync.Auto {
		return "", false
	}
	var last time.Time
	for _, t := range tasks {
		if t.Trigger != directory.TriggerEvent && t.StartedAt.After(last) {
			last = t.StartedAt
		}
	}
	unit := e.CycleUnit
	if unit == 0 {
		unit = time.Hour
	}
	if last.IsZero() || now.Sub(last) >= time.Duration(src.Sync.CycleHours)*unit {
		return directory.TriggerSchedule, true
	}
	return "", false
}

// Schedule checks for due tasks every interval until ctx ends.
func (e *Engine) Schedule(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.Due(ctx, now)
		}
	}
}
