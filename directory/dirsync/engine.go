package dirsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/internal/state"
)

// Opener returns the directory reader of a source (its connector).
type Opener func(ctx context.Context, src *directory.IdentitySource) (federation.DirectoryReader, error)

// Engine runs sync tasks.
type Engine struct {
	Store directory.Store
	State state.Store
	Open  Opener
	// Access is told, after the apply commits, whose access a task took away (access.Service in
	// production; nil in tests that only look at the directory).
	Access    Access
	Log       *slog.Logger
	Retention time.Duration // sync records older than this are deleted after each task
	LockTTL   time.Duration
	Now       func() time.Time // the clock of task times (default time.Now)
	// CycleUnit is the unit of a source's cycle_hours (0: an hour; shorter only in test builds).
	CycleUnit time.Duration
	// beforeApply is a test hook run inside the apply transaction after half the writes.
	midApply func() error
}

// Access ends access elsewhere in qiao when sync takes it away.
type Access interface {
	// UserDeparted: the person can no longer log on at all (departed, disabled, removed upstream
	// and linked nowhere else).
	UserDeparted(ctx context.Context, enterpriseID, userID string) error
	// UserLeftSource: the person's link to the source is gone while other sources still know
	// them; what that source granted ends.
	UserLeftSource(ctx context.Context, enterpriseID, userID, sourceID string) error
}

// lostAccess is what one apply took away.
type lostAccess struct {
	departed []string // users who can no longer log on
	left     []string // users whose link to the task's source was removed, other links remaining
}

// endAccess tells Access what the committed apply took away.
func (e *Engine) endAccess(ctx context.Context, ent, srcID string, lost lostAccess) {
	if e.Access == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, uid := range lost.departed {
		if err := e.Access.UserDeparted(ctx, ent, uid); err != nil {
			e.log().Error("end a departed user's access", "enterprise", ent, "user", uid, "err", err)
		}
	}
	for _, uid := range lost.left {
		if err := e.Access.UserLeftSource(ctx, ent, uid, srcID); err != nil {
			e.log().Error("end what a source granted a user who left it", "enterprise", ent, "source", srcID, "user", uid, "err", err)
		}
	}
}

// Options tune one run.
type Options struct {
	Trigger  directory.Trigger
	DryRun   bool
	Progress func(Progress)
}

// Progress is reported while a task runs.
type Progress struct {
	Phase   string // read-departments, read-users, plan, apply, done
	Depts   int
	Users   int
	Planned int
	Applied int
}

// Result is a finished run.
type Result struct {
	Task *directory.SyncTask // nil for a dry run
	Plan *Plan
	Info federation.ReadInfo
}

// ErrBusy means another task of the source is running (on this replica or another).
var ErrBusy = errors.New("a sync task of this source is already running")

func (e *Engine) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.Default()
	}
	return e.Log
}

// Run runs one task of a source. Read failures fail the task with nothing applied; a plan that
// deletes more than the source's thresholds cancels it with nothing applied.
func (e *Engine) Run(ctx context.Context, ent, srcID string, opt Options) (*Result, error) {
	src, err := e.Store.GetSource(ctx, ent, srcID)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	if src.Kind == directory.KindLocal {
		return nil, fmt.Errorf("sync: source %s/%s is the enterprise's own directory; there is nothing upstream to read", ent, srcID)
	}
	if !src.Enabled && !opt.DryRun {
		// A closed source neither syncs nor applies events (they wait in the inbox); a dry run
		// still shows what opening it would bring.
		return nil, fmt.Errorf("sync: source %s/%s is closed; open it (enabled: true) to synchronize, or use --dry-run to preview", ent, srcID)
	}
	if opt.Trigger == "" {
		opt.Trigger = directory.TriggerManual
	}
	progress := opt.Progress
	if progress == nil {
		progress = func(Progress) {}
	}
	ttl := e.LockTTL
	if ttl == 0 {
		ttl = 2 * time.Minute
	}
	var lease state.Lease
	if !opt.DryRun {
		lease, err = e.State.Lock(ctx, "sync:"+ent+"/"+srcID, ttl)
		if errors.Is(err, state.ErrLocked) {
			return nil, fmt.Errorf("sync %s/%s: %w", ent, srcID, ErrBusy)
		}
		if err != nil {
			return nil, fmt.Errorf("sync: take the source's lock: %w", err)
		}
		stop := state.Keep(ctx, lease, ttl, nil)
		defer func() {
			stop()
			_ = lease.Release(context.WithoutCancel(ctx))
		}()
	}
	task := &directory.SyncTask{EnterpriseID: ent, SourceID: srcID, Trigger: opt.Trigger, Status: directory.TaskRunning, DryRun: opt.DryRun, StartedAt: e.now()}
	if !opt.DryRun {
		// Holding the source's task lock, no other full sync of it runs anywhere: one still marked
		// running died with its process, and would otherwise show as running for ever.
		e.interrupted(ctx, ent, srcID, false)
		if err := e.Store.CreateSyncTask(ctx, task); err != nil {
			return nil, fmt.Errorf("sync: record the task: %w", err)
		}
	}
	res := &Result{}
	if !opt.DryRun {
		res.Task = task
	}
	finish := func(status directory.TaskStatus, reason string, counts map[string]int) (*Result, error) {
		task.Status, task.Reason, task.Counts, task.FinishedAt = status, reason, counts, e.now()
		task.ReadMode = res.Info.Mode
		if opt.DryRun {
			return res, nil
		}
		if err := e.Store.FinishSyncTask(context.WithoutCancel(ctx), task); err != nil {
			return res, fmt.Errorf("sync: record the outcome: %w", err)
		}
		return res, nil
	}
	fail := func(err error) (*Result, error) {
		e.log().Warn("sync task failed", "enterprise", ent, "source", srcID, "task", task.ID, "err", err)
		if _, ferr := finish(directory.TaskFailed, err.Error(), nil); ferr != nil {
			return res, ferr
		}
		return res, err
	}

	reader, err := e.Open(ctx, src)
	if err != nil {
		return fail(fmt.Errorf("connect to %s: %w", src.Kind, err))
	}
	progress(Progress{Phase: "read-departments"})
	var roots []string
	if !src.Sync.ScopeAll {
		roots = src.Sync.ScopeDeptIDs
	}
	depts, err := reader.Departments(ctx, roots)
	res.Info = reader.Info()
	if err != nil {
		return fail(fmt.Errorf("read departments: %w", err))
	}
	if err := checkTree(depts); err != nil {
		return fail(err)
	}
	progress(Progress{Phase: "read-users", Depts: len(depts)})
	// Users are mapped to local terms as they stream in: the upstream attribute maps are dropped
	// at once, so a 100k-user read holds only what the plan needs.
	// A task's records are staged in the store as they are read (dry runs keep them).
	up := map[string]*upUser{}
	var order []string
	var stage *stager
	var sp *spool         // records not staged (all where the store does not stage): they wait in a temporary file
	var known *knownLinks // before the read: whose records need not be staged
	if !opt.DryRun && src.Sync.UserInfo {
		if known, err = e.loadKnownLinks(ctx, ent, srcID); err != nil {
			return fail(fmt.Errorf("read the source's links: %w", err))
		}
		if st, ok := e.Store.(interface{ StagingPays() bool }); ok && st.StagingPays() {
			stage = &stager{store: e.Store, task: task.ID}
			defer func() {
				if err := stage.drop(ctx); err != nil {
					e.log().Warn("drop the sync's staged upstream records", "task", task.ID, "err", err)
				}
			}()
		}
		if sp, err = newSpool(); err != nil {
			return fail(err)
		}
		defer sp.close()
	}
	if src.Sync.UserInfo {
		n := 0
		err = reader.Users(ctx, depts, func(u federation.User) error {
			if _, dup := up[u.UserID]; dup {
				return nil
			}
			uu := newUpUser(src, &u)
			// A person unchanged by their fingerprint is most likely still so at the plan (which
			// reads the links again): their record goes to the spool, a sequential write to a
			// temporary file, rather than costing a staged insert, and is read back only if the
			// plan finds them changed after all. Held in memory instead, a 100k re-sync's records
			// took its peak RSS to 450 MiB.
			same := known != nil && known.same(u.UserID, uu.hash)
			switch {
			case stage != nil && !same:
				if err := stage.add(ctx, uu); err != nil {
					return fmt.Errorf("stage the upstream records: %w", err)
				}
			case sp != nil:
				if err := sp.add(uu); err != nil {
					return err
				}
			}
			up[u.UserID] = uu
			order = append(order, u.UserID)
			n++
			if n%1000 == 0 {
				progress(Progress{Phase: "read-users", Depts: len(depts), Users: n})
			}
			return ctx.Err()
		})
		if err == nil && stage != nil {
			err = stage.flush(ctx)
		}
		if err == nil && sp != nil {
			err = sp.flush()
		}
		res.Info = reader.Info()
		if err != nil {
			return fail(fmt.Errorf("read users: %w", err))
		}
	}
	nUsers := len(up)
	progress(Progress{Phase: "plan", Depts: len(depts), Users: nUsers})
	plan, err := e.plan(ctx, src, depts, up, order, nil)
	if err != nil {
		return fail(fmt.Errorf("plan: %w", err))
	}
	plan.spool = sp
	// The plan holds what it needs of the upstream users; nothing below uses up or order, so the
	// collector frees them before the apply's allocations (the progress reports count nUsers,
	// not len(up), for that).
	res.Plan = plan
	counts := plan.Counts()
	progress(Progress{Phase: "plan", Depts: len(depts), Users: nUsers, Planned: len(plan.Depts) + len(plan.Users)})
	if plan.UserDeletes > src.Sync.DeleteUsers || plan.DeptDeletes > src.Sync.DeleteDepts {
		reason := fmt.Sprintf("deletion protection: the task would remove %d users (threshold %d) and %d departments (threshold %d); "+
			"nothing was applied. If the upstream change is intended, raise the thresholds for one run or check the app's visibility scope",
			plan.UserDeletes, src.Sync.DeleteUsers, plan.DeptDeletes, src.Sync.DeleteDepts)
		e.log().Warn("sync task cancelled by deletion protection", "enterprise", ent, "source", srcID, "task", task.ID,
			"user_deletes", plan.UserDeletes, "dept_deletes", plan.DeptDeletes)
		return finish(directory.TaskCancelled, reason, counts)
	}
	if opt.DryRun {
		return finish(directory.TaskSucceeded, "dry run: nothing applied", counts)
	}
	if lease != nil {
		if err := lease.Refresh(ctx, ttl); err != nil {
			return fail(fmt.Errorf("lost the source's lock before applying: %w", err))
		}
	}
	// Events of the source apply while this task reads and plans: they take only the apply lock.
	// Take it for the apply, and leave alone what events changed since this task began — its
	// snapshot is older than what they applied, and writing it would bring back a person an event
	// just removed (the next full sync reads them afresh).
	applyLease, err := e.lockApply(ctx, ent, srcID, ttl, ttl)
	if err != nil {
		return fail(fmt.Errorf("take the source's apply lock: %w", err))
	}
	defer func() { _ = applyLease.Release(context.WithoutCancel(ctx)) }()
	if err := e.deferToEvents(ctx, ent, srcID, task.StartedAt, ttl, plan); err != nil {
		return fail(fmt.Errorf("read what events changed: %w", err))
	}
	counts = plan.Counts()
	progress(Progress{Phase: "apply", Depts: len(depts), Users: nUsers, Planned: len(plan.Depts) + len(plan.Users)})
	lost, err := e.apply(ctx, task, plan, func(n int) {
		progress(Progress{Phase: "apply", Depts: len(depts), Users: nUsers, Planned: len(plan.Depts) + len(plan.Users), Applied: n})
	})
	if err != nil {
		return fail(fmt.Errorf("apply (rolled back, nothing changed): %w", err))
	}
	e.endAccess(ctx, ent, src.ID, lost)
	if e.Retention > 0 {
		if n, err := e.Store.DeleteSyncTasksBefore(ctx, time.Now().Add(-e.Retention)); err != nil {
			e.log().Warn("delete old sync records", "err", err)
		} else if n > 0 {
			e.log().Info("deleted old sync tasks", "tasks", n)
		}
	}
	progress(Progress{Phase: "done", Depts: len(depts), Users: nUsers, Planned: len(plan.Depts) + len(plan.Users), Applied: len(plan.Depts) + len(plan.Users)})
	return finish(directory.TaskSucceeded, "", counts)
}

// interruptedReason is what a task whose process died says, in the records and the console.
const interruptedReason = "interrupted: the process running this task stopped before it finished (its changes were not applied; a later run synchronizes the source)"

// interrupted fails the source's tasks of one kind left running by a process that died. It is
// called under the lock those tasks run under; a failure to mark them is logged, not fatal.
func (e *Engine) interrupted(ctx context.Context, ent, src string, events bool) {
	n, err := e.Store.InterruptSyncTasks(ctx, ent, src, events, e.now(), interruptedReason)
	switch {
	case err != nil:
		e.log().Warn("sync: could not mark interrupted tasks", "enterprise", ent, "source", src, "err", err)
	case n > 0:
		e.log().Warn("sync: tasks left running by a stopped process marked failed", "enterprise", ent, "source", src, "tasks", n, "events", events)
	}
}

// applyLockKey is the lock an apply holds: a full sync's apply, an event's whole run. A full sync
// also holds the source's task lock ("sync:...") from start to end; events do not wait for it.
func applyLockKey(ent, src string) string { return "syncapply:" + ent + "/" + src }

// lockApply takes the source's apply lock for ttl, waiting up to wait for whoever holds it (an
// event, or a full sync's apply); ErrBusy when it stays taken.
func (e *Engine) lockApply(ctx context.Context, ent, src string, ttl, wait time.Duration) (state.Lease, error) {
	deadline := time.Now().Add(wait)
	pause := 5 * time.Millisecond
	for {
		l, err := e.State.Lock(ctx, applyLockKey(ent, src), ttl)
		if !errors.Is(err, state.ErrLocked) {
			return l, err
		}
		if time.Now().After(deadline) {
			return nil, ErrBusy
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// clockSkew is how far apart replicas' clocks may be when a full sync asks which events finished
// after it began.
const clockSkew = 2 * time.Second

// deferToEvents drops from a full sync's plan every department and user an event task of the
// source changed after the sync began (event tasks run under the apply lock and hold it at most
// ttl, so those that could have are the ones started since began-ttl).
func (e *Engine) deferToEvents(ctx context.Context, ent, src string, began time.Time, ttl time.Duration, p *Plan) error {
	depts, users, err := e.Store.TouchedByEvents(ctx, ent, src, began.Add(-ttl-clockSkew), began.Add(-clockSkew))
	if err != nil || len(depts)+len(users) == 0 {
		return err
	}
	dset := make(map[string]bool, len(depts))
	for _, id := range depts {
		dset[id] = true
	}
	uset := make(map[string]bool, len(users))
	for _, id := range users {
		uset[id] = true
	}
	keptDepts := p.Depts[:0]
	for _, d := range p.Depts {
		id := ""
		switch {
		case d.After != nil:
			id = d.After.UpstreamID
		case d.Before != nil:
			id = d.Before.UpstreamID
		}
		if dset[id] {
			p.Deferred++
			if d.Action == ActDelete {
				p.DeptDeletes--
			}
			continue
		}
		keptDepts = append(keptDepts, d)
	}
	p.Depts = keptDepts
	keptUsers := p.Users[:0]
	for _, u := range p.Users {
		if uset[u.UpstreamID] {
			p.Deferred++
			continue
		}
		keptUsers = append(keptUsers, u)
	}
	p.Users = keptUsers
	if p.Deferred > 0 {
		e.log().Info("full sync left to events what they changed while it ran", "enterprise", ent, "source", src, "deferred", p.Deferred)
	}
	return nil
}

// checkTree refuses an upstream tree with a cycle or a department listed under a parent that was
// not read: a snapshot that cannot be trusted is not applied.
func checkTree(depts []federation.Dept) error {
	parent := make(map[string]string, len(depts))
	for _, d := range depts {
		if d.ID == "" {
			return errors.New("upstream returned a department without an ID")
		}
		parent[d.ID] = d.ParentID
	}
	for _, d := range depts {
		if d.ParentID != "" {
			if _, ok := parent[d.ParentID]; !ok {
				return fmt.Errorf("upstream department %s names parent %s, which was not read", d.ID, d.ParentID)
			}
		}
		seen := map[string]bool{}
		for id := d.ID; id != ""; id = parent[id] {
			if seen[id] {
				return fmt.Errorf("upstream departments form a cycle through %s", id)
			}
			seen[id] = true
		}
	}
	return nil
}
