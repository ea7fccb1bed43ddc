package dirsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
)

// RunEvent applies one inboxed event as a task (trigger "event"): it re-reads the users and
// departments the event names through the connector — events are hints; post-2022 WeCom events
// carry only UserID and Department — and plans just those objects. ErrBusy means a task of the
// source is running; the caller retries the event after it.
func (e *Engine) RunEvent(ctx context.Context, se *directory.SourceEvent) (*directory.SyncTask, error) {
	var ev federation.Event
	if err := json.Unmarshal(se.Payload, &ev); err != nil {
		return nil, fmt.Errorf("event %d: payload: %w", se.ID, err)
	}
	src, err := e.Store.GetSource(ctx, se.EnterpriseID, se.SourceID)
	if err != nil {
		return nil, fmt.Errorf("event %d: %w", se.ID, err)
	}
	ttl := e.LockTTL
	if ttl == 0 {
		ttl = 2 * time.Minute
	}
	// Only the apply lock: an event does not wait for a full sync that is still reading (it may
	// read for minutes); the full sync leaves alone what events change meanwhile.
	lease, err := e.lockApply(ctx, src.EnterpriseID, src.ID, ttl, eventLockWait)
	if err != nil {
		return nil, ErrBusy
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	// An event task runs wholly under the apply lock: one still marked running died with its process.
	e.interrupted(ctx, src.EnterpriseID, src.ID, true)

	task := &directory.SyncTask{EnterpriseID: src.EnterpriseID, SourceID: src.ID, Trigger: directory.TriggerEvent,
		Status: directory.TaskRunning, StartedAt: e.now(), ReadMode: "event " + ev.Type}
	if err := e.Store.CreateSyncTask(ctx, task); err != nil {
		return nil, err
	}
	finish := func(status directory.TaskStatus, reason string, counts map[string]int) (*directory.SyncTask, error) {
		task.Status, task.Reason, task.Counts, task.FinishedAt = status, reason, counts, e.now()
		if err := e.Store.FinishSyncTask(context.WithoutCancel(ctx), task); err != nil {
			return task, err
		}
		if status == directory.TaskFailed {
			return task, errors.New(reason)
		}
		return task, nil
	}
	reader, err := e.Open(ctx, src)
	if err != nil {
		return finish(directory.TaskFailed, "connect: "+err.Error(), nil)
	}
	plan := &Plan{Unchanged: map[string]int{}}
	// The source's departments are looked up one by one as the event needs them (an event names
	// a few; a source may have thousands).
	local := map[string]*directory.Department{}
	var lookupErr error
	localDept := func(id string) *directory.Department {
		if d, ok := local[id]; ok {
			return d
		}
		d, err := e.Store.GetDepartment(ctx, src.EnterpriseID, src.ID, id)
		if err != nil && !errors.Is(err, directory.ErrNotFound) {
			lookupErr = err
			return nil
		}
		local[id] = d
		return d
	}
	inScope := func(dept string) bool {
		if src.Sync.ScopeAll {
			return true
		}
		return localDept(dept) != nil
	}

	if len(ev.DeptIDs) > 0 {
		dr, ok := reader.(federation.DeptReader)
		if !ok {
			return finish(directory.TaskFailed, "the connector cannot read single departments", nil)
		}
		for _, id := range ev.DeptIDs {
			d, err := dr.Department(ctx, id)
			cur := localDept(id)
			if lookupErr != nil {
				return finish(directory.TaskFailed, "read department "+id+": "+lookupErr.Error(), nil)
			}
			switch {
			case errors.Is(err, federation.ErrNotFound):
				if cur != nil {
					plan.Depts = append(plan.Depts, DeptChange{Action: ActDelete, Before: cur})
				}
				continue
			case err != nil:
				return finish(directory.TaskFailed, "read department "+id+": "+err.Error(), nil)
			}
			scoped := src.Sync.ScopeAll || inScope(d.ParentID) || contains(src.Sync.ScopeDeptIDs, d.ID)
			if lookupErr != nil {
				return finish(directory.TaskFailed, "read department "+d.ParentID+": "+lookupErr.Error(), nil)
			}
			if contains(src.Sync.ScopeDeptIDs, d.ID) {
				d.ParentID = "" // a scope root is a root locally
			}
			if !scoped {
				if cur != nil {
					plan.Depts = append(plan.Depts, DeptChange{Action: ActDelete, Before: cur})
				}
				continue
			}
			dd := d
			after := &directory.Department{EnterpriseID: src.EnterpriseID, SourceID: src.ID, UpstreamID: d.ID, ParentID: d.ParentID,
				Name: d.Name, Order: d.Order, Extra: d.Raw}
			switch {
			case cur == nil:
				plan.Depts = append(plan.Depts, DeptChange{Action: ActCreate, Upstream: &dd, After: after})
			case cur.ParentID != d.ParentID:
				plan.Depts = append(plan.Depts, DeptChange{Action: ActMove, Upstream: &dd, Before: cur, After: after})
			case cur.Name != d.Name || cur.Order != d.Order:
				plan.Depts = append(plan.Depts, DeptChange{Action: ActUpdate, Upstream: &dd, Before: cur, After: after})
			default:
				plan.Unchanged["department"]++
			}
		}
	}

	ids := append([]string(nil), ev.UserIDs...)
	if ev.NewUserID != "" {
		ids = append(ids, ev.NewUserID)
	}
	if len(ids) > 0 && src.Sync.UserInfo {
		ur, ok := reader.(federation.UserReader)
		if !ok {
			return finish(directory.TaskFailed, "the connector cannot read single users", nil)
		}
		only := map[string]bool{}
		up := map[string]*upUser{}
		var order []string
		for _, id := range ids {
			only[id] = true
			u, err := ur.User(ctx, id)
			if errors.Is(err, federation.ErrNotFound) {
				continue // gone upstream: planned as removed
			}
			if err != nil {
				return finish(directory.TaskFailed, "read user "+id+": "+err.Error(), nil)
			}
			kept := u.Depts[:0:0]
			for _, d := range u.Depts {
				if inScope(d) {
					kept = append(kept, d)
				}
			}
			if len(kept) == 0 && len(u.Depts) > 0 {
				continue // moved out of the synchronized scope: removed here
			}
			u.Depts = kept
			if _, dup := up[u.UserID]; !dup {
				up[u.UserID] = newUpUser(src, &u)
				order = append(order, u.UserID)
			}
		}
		if lookupErr != nil {
			return finish(directory.TaskFailed, "read departments: "+lookupErr.Error(), nil)
		}
		if err := e.planUsers(ctx, src, plan, up, order, only); err != nil {
			return finish(directory.TaskFailed, "plan: "+err.Error(), nil)
		}
	}
	counts := plan.Counts()
	if plan.Empty() {
		return finish(directory.TaskSucceeded, "", counts)
	}
	lost, err := e.apply(ctx, task, plan, func(int) {})
	if err != nil {
		return finish(directory.TaskFailed, "apply (rolled back): "+err.Error(), counts)
	}
	e.endAccess(ctx, src.EnterpriseID, src.ID, lost)
	return finish(directory.TaskSucceeded, "", counts)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// eventLockWait is how long an event waits for a running apply (another event's, or a full
// sync's) before it is put back in the inbox.
const eventLockWait = 5 * time.Second

// MaxEventAttempts bounds retries of an event that keeps failing (an upstream outage lasting
// beyond them is caught by the next scheduled sync).
const MaxEventAttempts = 10

// ProcessEvents applies the inbox until ctx ends: at once when notified, and every interval (so
// events stored before a crash, or claimed by a replica that died, are applied at start).
func (e *Engine) ProcessEvents(ctx context.Context, notify <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		e.DrainEvents(ctx)
		select {
		case <-ctx.Done():
			return
		case <-notify:
		case <-t.C:
		}
	}
}

// DrainEvents applies every claimable event now and returns how many it applied.
func (e *Engine) DrainEvents(ctx context.Context) int {
	applied := 0
	for ctx.Err() == nil {
		now := time.Now()
		evs, err := e.Store.ClaimSourceEvents(ctx, now, now.Add(time.Minute), 50)
		if err != nil {
			e.log().Warn("event inbox: claim", "err", err)
			return applied
		}
		if len(evs) == 0 {
			return applied
		}
		busy := false
		for _, se := range evs {
			task, err := e.RunEvent(ctx, se)
			switch {
			case errors.Is(err, ErrBusy):
				se.Status, se.Error = directory.EventPending, "waiting for a running task of the source"
				busy = true
			case err != nil && se.Attempts < MaxEventAttempts:
				se.Status, se.Error = directory.EventPending, err.Error()
				busy = true
			case err != nil:
				se.Status, se.Error = directory.EventFailed, err.Error()
			default:
				se.Status, se.Error = directory.EventApplied, ""
				applied++
			}
			if task != nil {
				se.TaskID = task.ID
			}
			if ferr := e.Store.FinishSourceEvent(context.WithoutCancel(ctx), se); ferr != nil {
				e.log().Error("event inbox: record outcome", "event", se.ID, "err", ferr)
			}
			if err != nil {
				e.log().Warn("event not applied", "enterprise", se.EnterpriseID, "source", se.SourceID, "event", se.ID, "type", se.EventType, "err", err)
			}
		}
		if busy {
			return applied // try again on the next tick rather than spin
		}
	}
	return applied
}
