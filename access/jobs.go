package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

// MaxJobAttempts bounds retries of an access job before it is recorded as failed.
const MaxJobAttempts = 10

// jobAudit names the audit event of each job kind.
var jobAudit = map[string]string{
	directory.JobSourceClosed:   "source.close",
	directory.JobSourceDeleted:  "source.delete",
	directory.JobUsersDeparted:  "user.revoke",
	directory.JobUserLeftSource: "user.revoke_source",
	directory.JobClientDisabled: "app.disable",
	directory.JobClientDeleted:  "app.delete",
	directory.JobSPDisabled:     "app.disable",
	directory.JobSPDeleted:      "app.delete",
}

// RunJob does what one access job owes and returns the counts it ended.
func (s *Service) RunJob(ctx context.Context, j *directory.AccessJob) (map[string]int, error) {
	switch j.Kind {
	case directory.JobSourceClosed:
		return s.endSource(ctx, j.EnterpriseID, j.Object)
	case directory.JobSourceDeleted, directory.JobUsersDeparted, directory.JobUserLeftSource:
		return s.endDeletedSource(ctx, j)
	case directory.JobClientDisabled, directory.JobClientDeleted:
		return s.endClient(ctx, j)
	case directory.JobSPDisabled, directory.JobSPDeleted:
		return s.endServiceProvider(ctx, j)
	}
	return nil, fmt.Errorf("unknown access job kind %q", j.Kind)
}

// DrainJobs runs every claimable access job now and returns how many it finished. Each finished
// job leaves one audit event with its counts (written last: a reader that sees it sees the rest).
func (s *Service) DrainJobs(ctx context.Context) int {
	done := 0
	for ctx.Err() == nil {
		now := time.Now()
		jobs, err := s.Store.ClaimAccessJobs(ctx, now, now.Add(5*time.Minute), 20)
		if err != nil {
			s.log().Warn("access jobs: claim", "err", err)
			return done
		}
		if len(jobs) == 0 {
			return done
		}
		retry := false
		for _, j := range jobs {
			started := time.Now()
			counts, err := s.RunJob(ctx, j)
			j.Result, _ = json.Marshal(counts)
			switch {
			case err != nil && j.Attempts < MaxJobAttempts:
				j.Status, j.Error = directory.EventPending, err.Error()
				retry = true
			case err != nil:
				j.Status, j.Error = directory.EventFailed, err.Error()
			default:
				j.Status, j.Error = directory.EventApplied, ""
			}
			if j.Status != directory.EventPending {
				done++
				s.auditJob(ctx, j, counts, err, time.Since(started))
			}
			if ferr := s.Store.FinishAccessJob(context.WithoutCancel(ctx), j); ferr != nil {
				s.log().Error("access jobs: record outcome", "job", j.ID, "err", ferr)
			}
			if err != nil {
				s.log().Warn("access job not finished", "enterprise", j.EnterpriseID, "kind", j.Kind, "object", j.Object,
					"attempt", j.Attempts, "err", err)
			} else {
				s.log().Info("access ended", "enterprise", j.EnterpriseID, "kind", j.Kind, "object", j.Object, "counts", counts)
			}
		}
		if retry {
			return done // again on the next tick rather than spin
		}
	}
	return done
}

func (s *Service) auditJob(ctx context.Context, j *directory.AccessJob, counts map[string]int, err error, took time.Duration) {
	kind := jobAudit[j.Kind]
	if kind == "" {
		kind = j.Kind
	}
	ev := &directory.AuditEvent{EnterpriseID: j.EnterpriseID, Kind: kind, Actor: j.Actor, Reason: j.Reason, Outcome: "ok"}
	switch j.Kind {
	case directory.JobSourceClosed, directory.JobSourceDeleted:
		ev.SourceID = j.Object
	}
	if err != nil {
		ev.Outcome = "error"
	}
	detail := map[string]any{"object": j.Object, "job": j.ID, "ms": took.Milliseconds()}
	if app, ok := jobApp[j.Kind]; ok {
		detail["app"] = app
	}
	for k, v := range counts {
		detail[k] = v
	}
	if err != nil {
		detail["error"] = err.Error()
	}
	ev.Detail, _ = json.Marshal(detail)
	if aerr := s.Store.AddAuditEvent(context.WithoutCancel(ctx), ev); aerr != nil {
		s.log().Error("audit access job", "job", j.ID, "err", aerr)
	}
}

// ProcessJobs runs access jobs until ctx ends: at once when notified (a change made in this
// process), and every interval (a change made by `qiao apply` or another replica, or a job a
// replica that died had claimed).
func (s *Service) ProcessJobs(ctx context.Context, notify <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.DrainJobs(ctx)
		select {
		case <-ctx.Done():
			return
		case <-notify:
		case <-t.C:
		}
	}
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// joinErrs is errors.Join that keeps nil nil.
func joinErrs(errs []error) error { return errors.Join(errs...) }
