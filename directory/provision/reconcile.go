package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
)

// ReconcileOptions say how a full reconcile runs.
type ReconcileOptions struct {
	Trigger string // manual (default), schedule
	DryRun  bool   // plan and record, change nothing
	Force   bool   // go past deletion protection
	// OnStart, when set, is called with the task once it is recorded (StartReconcile).
	OnStart func(*directory.ProvisionTask)
	// Wait is how long to wait for another push of the enterprise to finish (0: as long as it
	// takes); past it the reconcile does not start (ErrBusy).
	Wait time.Duration
}

// interruptedReason is what a task whose process died says.
const interruptedReason = "interrupted: the process running this push stopped before it finished; the next push (or the outbox) completes what it left"

// startWait is how long "push now" waits for a push already running before it answers busy.
const startWait = 10 * time.Second

// StartReconcile starts a reconcile in the background and returns its task once recorded.
func (s *Service) StartReconcile(ctx context.Context, ent string, opt ReconcileOptions) (*directory.ProvisionTask, error) {
	started := make(chan *directory.ProvisionTask, 1)
	failed := make(chan error, 1)
	if opt.Wait == 0 {
		opt.Wait = startWait // an admin's "push now" answers soon: busy, or started
	}
	opt.OnStart = func(t *directory.ProvisionTask) {
		c := *t // the reconcile goes on changing its own
		c.Counts = map[string]int{}
		started <- &c
	}
	go func() {
		if _, err := s.Reconcile(context.WithoutCancel(ctx), ent, opt); err != nil {
			failed <- err
		}
	}()
	select {
	case t := <-started:
		return t, nil
	case err := <-failed:
		return nil, err
	}
}

// Reconcile reads the target under its root department, plans the creates, updates, moves and
// deletes that make it match the directory (departments parents first; people; removals of
// people, then of departments deepest first), cancels when the deletions pass the target's
// thresholds, and applies the plan (or, dry, only records it). Only objects qiao created are
// changed or deleted; others found under the root are counted as unmanaged and left alone.
func (s *Service) Reconcile(ctx context.Context, ent string, opt ReconcileOptions) (*directory.ProvisionTask, error) {
	ps, err := s.ps()
	if err != nil {
		return nil, err
	}
	ctx, unlock, err := s.lock(ctx, ent, opt.Wait)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Holding the enterprise's push lock, no reconcile of it runs anywhere: one still marked
	// running died with its process, and would otherwise show as running for ever.
	if n, err := ps.InterruptProvisionTasks(ctx, ent, s.now(), interruptedReason); err != nil {
		s.log().Warn("provisioning: could not mark interrupted tasks", "enterprise", ent, "err", err)
	} else if n > 0 {
		s.log().Warn("provisioning: tasks left running by a stopped process marked failed", "enterprise", ent, "tasks", n)
	}
	t, err := ps.GetProvisionTarget(ctx, ent)
	if err != nil {
		return nil, err
	}
	if !t.Enabled && !opt.DryRun {
		return nil, errors.New("the provisioning target is disabled: enable it, or run a dry run")
	}
	if opt.Trigger == "" {
		opt.Trigger = "manual"
	}
	task := &directory.ProvisionTask{EnterpriseID: ent, Trigger: opt.Trigger, DryRun: opt.DryRun, Counts: map[string]int{}}
	if err := ps.CreateProvisionTask(ctx, task); err != nil {
		return nil, err
	}
	if opt.OnStart != nil {
		opt.OnStart(task)
	}
	p, err := s.pusher(ctx, ps, t, task.ID, opt.DryRun)
	finish := func(status directory.TaskStatus, reason string) (*directory.ProvisionTask, error) {
		task.Status, task.Reason = status, reason
		if p != nil {
			task.Calls = p.w.Calls()
			for _, r := range p.records {
				task.Counts[r.Action]++
			}
			if err := ps.AddProvisionRecords(ctx, p.records); err != nil {
				return task, err
			}
		}
		return task, ps.FinishProvisionTask(context.WithoutCancel(ctx), task)
	}
	if err != nil {
		p = nil
		return finish(directory.TaskFailed, "the target cannot be opened: "+err.Error())
	}
	// The target as it is.
	rd := p.w.Reader()
	rdepts, err := rd.Departments(ctx, []string{t.Settings.RootDepartment})
	if err != nil {
		return finish(directory.TaskFailed, "read the target's departments: "+err.Error())
	}
	remoteDept := map[string]federation.Dept{}
	for _, d := range rdepts {
		remoteDept[d.ID] = d
	}
	remoteUser := map[string]federation.User{}
	if err := rd.Users(ctx, rdepts, func(u federation.User) error { remoteUser[u.UserID] = u; return nil }); err != nil {
		return finish(directory.TaskFailed, "read the target's people: "+err.Error())
	}

	// The directory as it should be pushed.
	var deptKeys []string
	depth := map[string]int{}
	users := map[string]bool{}
	var userOrder []string
	for src, on := range p.sc.pushed {
		if !on {
			continue
		}
		ds, err := s.Store.ListDepartments(ctx, ent, src)
		if err != nil {
			return finish(directory.TaskFailed, "read the directory: "+err.Error())
		}
		for _, d := range ds {
			p.sc.depts[deptKey(src, d.UpstreamID)] = d
		}
		for _, d := range ds {
			if in, err := p.sc.deptInScope(ctx, d); err != nil {
				return finish(directory.TaskFailed, "read the directory: "+err.Error())
			} else if in {
				k := deptKey(src, d.UpstreamID)
				deptKeys = append(deptKeys, k)
				n := 0
				for cur := d; cur != nil && cur.ParentID != "" && n < 64; n++ {
					cur = p.sc.depts[deptKey(src, cur.ParentID)]
				}
				depth[k] = n
			}
		}
		lus, err := s.Store.SourceUsers(ctx, ent, src)
		if err != nil {
			return finish(directory.TaskFailed, "read the directory: "+err.Error())
		}
		for _, lu := range lus {
			if !users[lu.User.ID] {
				users[lu.User.ID] = true
				userOrder = append(userOrder, lu.User.ID)
			}
		}
	}
	sort.SliceStable(deptKeys, func(i, j int) bool { return depth[deptKeys[i]] < depth[deptKeys[j]] })
	sort.Strings(userOrder)

	// What qiao manages there, and what of it should go.
	mdepts, err := ps.ListProvisionedObjects(ctx, ent, directory.ProvisionDepartment)
	if err != nil {
		return finish(directory.TaskFailed, err.Error())
	}
	musers, err := ps.ListProvisionedObjects(ctx, ent, directory.ProvisionUser)
	if err != nil {
		return finish(directory.TaskFailed, err.Error())
	}
	managedUser := map[string]*directory.ProvisionedObject{}
	managedRemote := map[string]bool{}
	for _, o := range musers {
		managedUser[o.LocalKey] = o
		managedRemote[o.RemoteID] = true
	}
	var dropUsers []string
	for _, o := range musers {
		want, reason, _, err := p.sc.desiredUser(ctx, o.LocalKey, true)
		if err == nil && want == nil && reason != reasonOwn && !(reason == reasonDeparted && t.Settings.Departure == "disable") {
			dropUsers = append(dropUsers, o.LocalKey)
		}
		if !users[o.LocalKey] {
			users[o.LocalKey] = true
			userOrder = append(userOrder, o.LocalKey)
		}
	}
	wanted := map[string]bool{}
	for _, k := range deptKeys {
		wanted[k] = true
	}
	var dropDepts []*directory.ProvisionedObject
	for _, o := range mdepts {
		if !wanted[o.LocalKey] {
			dropDepts = append(dropDepts, o)
		}
	}
	if !opt.Force && (len(dropUsers) > t.Settings.DeleteUsers || len(dropDepts) > t.Settings.DeleteDepts) {
		return finish(directory.TaskCancelled, fmt.Sprintf("deletion protection: the reconcile would delete %d people (threshold %d) and %d departments (threshold %d) in WeCom; check the directory, raise the thresholds or run it with force",
			len(dropUsers), t.Settings.DeleteUsers, len(dropDepts), t.Settings.DeleteDepts))
	}
	unmanaged := 0
	for id := range remoteUser {
		if !managedRemote[id] {
			unmanaged++
		}
	}
	task.Counts["unmanaged"] = unmanaged

	// A record's "before" is the target's object as read, when it was there.
	before := func(from int, raw json.RawMessage) {
		for _, r := range p.records[from:] {
			if raw != nil {
				r.Before = raw
			}
		}
	}
	var failed int
	note := func(err error) {
		if err != nil {
			failed++
		}
	}
	// Departments, parents first.
	for _, k := range deptKeys {
		o, _ := p.object(ctx, directory.ProvisionDepartment, k)
		drift := false
		var raw json.RawMessage
		if o != nil && o.RemoteID != "" {
			rdep, ok := remoteDept[o.RemoteID]
			var pushed federation.WriteDept
			_ = json.Unmarshal(o.Pushed, &pushed)
			drift = !ok || rdep.Name != pushed.Name || rdep.ParentID != pushed.ParentID
			raw = rdep.Raw
		}
		n := len(p.records)
		note(p.pushDept(ctx, k, drift))
		before(n, raw)
	}
	// People.
	for _, id := range userOrder {
		o := managedUser[id]
		drift := false
		var raw json.RawMessage
		if o != nil {
			var pushed federation.WriteUser
			_ = json.Unmarshal(o.Pushed, &pushed)
			ru, ok := remoteUser[o.RemoteID]
			drift = !ok || userDrift(pushed, ru)
			raw = ru.Raw
		}
		n := len(p.records)
		note(p.pushUser(ctx, id, drift))
		before(n, raw)
	}
	// Departments no longer pushed, deepest first at the target.
	rdepth := func(id string) int {
		n := 0
		for d, ok := remoteDept[id]; ok && n < 64; d, ok = remoteDept[d.ParentID] {
			n++
		}
		return n
	}
	sort.SliceStable(dropDepts, func(i, j int) bool { return rdepth(dropDepts[i].RemoteID) > rdepth(dropDepts[j].RemoteID) })
	for _, o := range dropDepts {
		n := len(p.records)
		note(p.pushDept(ctx, o.LocalKey, false))
		before(n, remoteDept[o.RemoteID].Raw)
	}
	if failed > 0 {
		return finish(directory.TaskSucceeded, fmt.Sprintf("%d objects failed: see the records", failed))
	}
	return finish(directory.TaskSucceeded, "")
}

// userDrift reports whether the target's person differs from what qiao last pushed.
func userDrift(pushed federation.WriteUser, ru federation.User) bool {
	a := ru.Attrs
	if a["name"] != pushed.Name || (a["position"] != pushed.Position) {
		return true
	}
	// Mobile and email are withheld from some secrets (§1.3.1): compare them only when read.
	if m, ok := a["mobile"]; ok && m != pushed.Mobile {
		return true
	}
	if e, ok := a["email"]; ok && e != pushed.Email {
		return true
	}
	if (ru.Status == federation.StatusDisabled) == pushed.Enabled {
		return true
	}
	got := slices.Clone(ru.Depts)
	want := slices.Clone(pushed.Depts)
	slices.Sort(got)
	slices.Sort(want)
	return !slices.Equal(got, want)
}
