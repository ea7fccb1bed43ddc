package dirsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	stdsync "sync"
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
	// Revoke ends the sessions and refresh tokens of a user who can no longer log on. It is called
	// after the apply commits, once per departed, disabled or removed user.
	Revoke    func(ctx context.Context, enterpriseID, userID string) error
	Log       *slog.Logger
	Retention time.Duration // sync records older than this are deleted after each task
	LockTTL   time.Duration
	Now       func() time.Time // the clock of task times (default time.Now)
	// beforeApply is a test hook run inside the apply transaction after half the writes.
	midApply func() error
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
		stop := keepLease(ctx, lease, ttl)
		defer func() {
			stop()
			_ = lease.Release(context.WithoutCancel(ctx))
		}()
	}
	task := &directory.SyncTask{EnterpriseID: ent, SourceID: srcID, Trigger: opt.Trigger, Status: directory.TaskRunning, DryRun: opt.DryRun, StartedAt: e.now()}
	if !opt.DryRun {
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
	up := map[string]*upUser{}
	var order []string
	if src.Sync.UserInfo {
		n := 0
		err = reader.Users(ctx, depts, func(u federation.User) error {
			if _, dup := up[u.UserID]; dup {
				return nil
			}
			up[u.UserID] = &upUser{UserID: u.UserID, UnionID: u.UnionID, Depts: u.Depts, Raw: u.Raw, m: mapUser(src, &u)}
			order = append(order, u.UserID)
			n++
			if n%1000 == 0 {
				progress(Progress{Phase: "read-users", Depts: len(depts), Users: n})
			}
			return ctx.Err()
		})
		res.Info = reader.Info()
		if err != nil {
			return fail(fmt.Errorf("read users: %w", err))
		}
	}
	progress(Progress{Phase: "plan", Depts: len(depts), Users: len(up)})
	plan, err := e.plan(ctx, src, depts, up, order, nil)
	if err != nil {
		return fail(fmt.Errorf("plan: %w", err))
	}
	res.Plan = plan
	counts := plan.Counts()
	progress(Progress{Phase: "plan", Depts: len(depts), Users: len(up), Planned: len(plan.Depts) + len(plan.Users)})
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
	progress(Progress{Phase: "apply", Depts: len(depts), Users: len(up), Planned: len(plan.Depts) + len(plan.Users)})
	departed, err := e.apply(ctx, task, plan, func(n int) {
		progress(Progress{Phase: "apply", Depts: len(depts), Users: len(up), Planned: len(plan.Depts) + len(plan.Users), Applied: n})
	})
	if err != nil {
		return fail(fmt.Errorf("apply (rolled back, nothing changed): %w", err))
	}
	for _, uid := range departed {
		if e.Revoke == nil {
			break
		}
		if err := e.Revoke(context.WithoutCancel(ctx), ent, uid); err != nil {
			e.log().Error("revoke a departed user's sessions", "enterprise", ent, "user", uid, "err", err)
		}
	}
	if e.Retention > 0 {
		if n, err := e.Store.DeleteSyncTasksBefore(ctx, time.Now().Add(-e.Retention)); err != nil {
			e.log().Warn("delete old sync records", "err", err)
		} else if n > 0 {
			e.log().Info("deleted old sync tasks", "tasks", n)
		}
	}
	progress(Progress{Phase: "done", Depts: len(depts), Users: len(up), Planned: len(plan.Depts) + len(plan.Users), Applied: len(plan.Depts) + len(plan.Users)})
	return finish(directory.TaskSucceeded, "", counts)
}

// keepLease refreshes the lock while a long task runs.
func keepLease(ctx context.Context, l state.Lease, ttl time.Duration) func() {
	done := make(chan struct{})
	var wg stdsync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_ = l.Refresh(ctx, ttl)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
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

// plan compares the upstream snapshot with the local copy of the source.
// upUser is an upstream user reduced to what the plan needs.
type upUser struct {
	UserID  string
	UnionID string
	Depts   []string
	Raw     json.RawMessage
	m       mapped
}

// plan compares the upstream snapshot with the local copy of the source. With only set (an event),
// it compares just those upstream users: departments are not diffed and only the named users can
// be removed.
func (e *Engine) plan(ctx context.Context, src *directory.IdentitySource, depts []federation.Dept, up map[string]*upUser, order []string, only map[string]bool) (*Plan, error) {
	ent := src.EnterpriseID
	p := &Plan{Unchanged: map[string]int{}}
	if only != nil {
		return p, e.planUsers(ctx, src, p, up, order, only)
	}
	localDepts, err := e.Store.ListDepartments(ctx, ent, src.ID)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*directory.Department, len(localDepts))
	for _, d := range localDepts {
		byID[d.UpstreamID] = d
	}
	seenDept := make(map[string]bool, len(depts))
	for i := range depts {
		d := &depts[i]
		seenDept[d.ID] = true
		after := &directory.Department{EnterpriseID: ent, SourceID: src.ID, UpstreamID: d.ID, ParentID: d.ParentID, Name: d.Name, Order: d.Order, Extra: d.Raw}
		cur := byID[d.ID]
		switch {
		case cur == nil:
			p.Depts = append(p.Depts, DeptChange{Action: ActCreate, Upstream: d, After: after})
		case cur.ParentID != d.ParentID:
			p.Depts = append(p.Depts, DeptChange{Action: ActMove, Upstream: d, Before: cur, After: after})
		case cur.Name != d.Name || cur.Order != d.Order:
			p.Depts = append(p.Depts, DeptChange{Action: ActUpdate, Upstream: d, Before: cur, After: after})
		default:
			p.Unchanged["department"]++
		}
	}
	for _, d := range localDepts {
		if !seenDept[d.UpstreamID] {
			p.Depts = append(p.Depts, DeptChange{Action: ActDelete, Before: d})
			p.DeptDeletes++
		}
	}
	if !src.Sync.UserInfo {
		return p, nil // structure only
	}
	return p, e.planUsers(ctx, src, p, up, order, nil)
}

func (e *Engine) planUsers(ctx context.Context, src *directory.IdentitySource, p *Plan, up map[string]*upUser, order []string, only map[string]bool) error {
	ent := src.EnterpriseID
	var linked []directory.LinkedUser
	var err error
	if only == nil {
		if linked, err = e.Store.SourceUsers(ctx, ent, src.ID); err != nil {
			return err
		}
	} else {
		for id := range only {
			l, err := e.Store.GetUserLink(ctx, ent, src.ID, id)
			if errors.Is(err, directory.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			u, err := e.Store.GetUser(ctx, ent, l.UserID)
			if err != nil {
				return err
			}
			linked = append(linked, directory.LinkedUser{Link: l, User: u})
		}
	}
	byUp := make(map[string]directory.LinkedUser, len(linked))
	linkedUser := make(map[string]bool, len(linked))
	for _, lu := range linked {
		byUp[lu.Link.UpstreamID] = lu
		linkedUser[lu.User.ID] = true
	}
	// Users of the enterprise not linked to this source, for identity matching.
	var byUsername map[string]*directory.User
	var byField map[string][]*directory.User
	loadOthers := func() error {
		if byUsername != nil {
			return nil
		}
		byUsername, byField = map[string]*directory.User{}, map[string][]*directory.User{}
		after := ""
		for {
			page, err := e.Store.ListUsers(ctx, ent, after, 5000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				return nil
			}
			for _, u := range page {
				if linkedUser[u.ID] {
					continue
				}
				byUsername[u.Username] = u
				if u.Email != "" {
					byField["email:"+u.Email] = append(byField["email:"+u.Email], u)
				}
				if u.Mobile != "" {
					byField["mobile:"+u.Mobile] = append(byField["mobile:"+u.Mobile], u)
				}
			}
			after = page[len(page)-1].ID
		}
	}
	claimed := map[string]string{} // local user ID -> upstream ID that claimed it in this plan
	usernames := map[string]bool{}
	seenUp := make(map[string]bool, len(up))
	for _, id := range order {
		u := up[id]
		seenUp[id] = true
		if !validUserID(src.Kind, u.UserID) {
			p.Users = append(p.Users, UserChange{Action: ActError, UpstreamID: u.UserID, Upstream: u.Raw,
				Error: fmt.Sprintf("userid %q breaks the platform's userid rules; skipped", u.UserID)})
			continue
		}
		m := u.m
		link := &directory.UserLink{EnterpriseID: ent, SourceID: src.ID, UpstreamID: u.UserID, UnionID: u.UnionID,
			Departments: u.Depts, Upstream: u.Raw}
		if cur, ok := byUp[u.UserID]; ok {
			after := apply(cur.User, m)
			link.UserID = cur.User.ID
			userChanged := !sameUser(cur.User, after)
			deptsChanged := !sameStrings(cur.Link.Departments, u.Depts)
			linkChanged := deptsChanged || cur.Link.UnionID != u.UnionID
			switch {
			case !userChanged && !linkChanged:
				p.Unchanged["user"]++
				continue
			case !userChanged && deptsChanged:
				p.Users = append(p.Users, UserChange{Action: ActMove, UpstreamID: u.UserID, Upstream: u.Raw, Before: cur.User, After: cur.User, LinkBefore: cur.Link, LinkAfter: link})
			default:
				ch := UserChange{Action: ActUpdate, UpstreamID: u.UserID, Upstream: u.Raw, Before: cur.User, After: after, LinkBefore: cur.Link, LinkAfter: link}
				if cur.User.Status == directory.UserActive && after.Status != directory.UserActive {
					ch.Departs = true
					if after.Status == directory.UserDeparted {
						p.UserDeletes++
					}
				}
				p.Users = append(p.Users, ch)
			}
			continue
		}
		// A new upstream user: link to an existing local user by the configured identifier.
		var candidates []*directory.User
		if only != nil {
			// An event names few users: look them up instead of loading the enterprise.
			if candidates, err = e.matchCandidates(ctx, src, m, linkedUser); err != nil {
				return err
			}
			byUsername = map[string]*directory.User{}
			if len(candidates) == 0 {
				if cu, err := e.Store.GetUserByUsername(ctx, ent, m.Username); err == nil {
					byUsername[cu.Username] = cu // taken: the new user gets a suffixed username
				}
			}
		} else {
			if err := loadOthers(); err != nil {
				return err
			}
			switch src.Sync.MatchBy {
			case "email":
				if m.Email != "" {
					candidates = byField["email:"+m.Email]
				}
			case "mobile":
				if m.Mobile != "" {
					candidates = byField["mobile:"+m.Mobile]
				}
			default:
				if cu := byUsername[m.Username]; cu != nil {
					candidates = []*directory.User{cu}
				}
			}
		}
		if len(candidates) > 1 {
			ids := make([]string, len(candidates))
			for i, c := range candidates {
				ids[i] = c.Username
			}
			p.Users = append(p.Users, UserChange{Action: ActError, UpstreamID: u.UserID, Upstream: u.Raw,
				Error: fmt.Sprintf("ambiguous match by %s: local users %s all match; fix the duplicates or match by another field", src.Sync.MatchBy, strings.Join(ids, ", "))})
			continue
		}
		if len(candidates) == 1 {
			cu := candidates[0]
			if other, dup := claimed[cu.ID]; dup {
				p.Users = append(p.Users, UserChange{Action: ActError, UpstreamID: u.UserID, Upstream: u.Raw,
					Error: fmt.Sprintf("local user %s is matched by both %s and %s upstream; skipped", cu.Username, other, u.UserID)})
				continue
			}
			claimed[cu.ID] = u.UserID
			after := apply(cu, m)
			after.Username = cu.Username // a matched user keeps their username
			link.UserID = cu.ID
			p.Users = append(p.Users, UserChange{Action: ActUpdate, UpstreamID: u.UserID, Upstream: u.Raw, Before: cu, After: after, LinkAfter: link})
			continue
		}
		nu := &directory.User{EnterpriseID: ent, Username: m.Username, Name: m.Name, Email: m.Email, Mobile: m.Mobile, Status: m.Status, Attributes: m.Attrs}
		if byUsername[nu.Username] != nil || usernames[nu.Username] {
			nu.Username = m.Username + "@" + src.ID
		}
		usernames[nu.Username] = true
		p.Users = append(p.Users, UserChange{Action: ActCreate, UpstreamID: u.UserID, Upstream: u.Raw, After: nu, LinkAfter: link})
	}
	for _, lu := range linked {
		if seenUp[lu.Link.UpstreamID] {
			continue
		}
		after := *lu.User
		after.Status = directory.UserDeparted
		p.Users = append(p.Users, UserChange{Action: ActDelete, UpstreamID: lu.Link.UpstreamID, Before: lu.User, After: &after,
			LinkBefore: lu.Link, DropLink: true, Departs: lu.User.Status == directory.UserActive})
		p.UserDeletes++
	}
	return nil
}

// matchCandidates finds the local users an upstream user may link to, excluding users already
// linked to this source.
func (e *Engine) matchCandidates(ctx context.Context, src *directory.IdentitySource, m mapped, linked map[string]bool) ([]*directory.User, error) {
	ent := src.EnterpriseID
	var found []*directory.User
	switch src.Sync.MatchBy {
	case "email", "mobile":
		v := m.Email
		if src.Sync.MatchBy == "mobile" {
			v = m.Mobile
		}
		us, err := e.Store.FindUsers(ctx, ent, src.Sync.MatchBy, v)
		if err != nil {
			return nil, err
		}
		found = us
	default:
		u, err := e.Store.GetUserByUsername(ctx, ent, m.Username)
		if err != nil && !errors.Is(err, directory.ErrNotFound) {
			return nil, err
		}
		if u != nil {
			found = []*directory.User{u}
		}
	}
	var out []*directory.User
	for _, u := range found {
		links, err := e.Store.LinksOfUser(ctx, ent, u.ID)
		if err != nil {
			return nil, err
		}
		mine := linked[u.ID]
		for _, l := range links {
			mine = mine || l.SourceID == src.ID
		}
		if !mine {
			out = append(out, u)
		}
	}
	return out, nil
}

// apply returns a copy of cur with the mapped upstream fields.
func apply(cur *directory.User, m mapped) *directory.User {
	after := *cur
	after.Name, after.Email, after.Mobile, after.Status = m.Name, m.Email, m.Mobile, m.Status
	attrs := map[string]string{}
	for k, v := range cur.Attributes {
		attrs[k] = v
	}
	for k, v := range m.Attrs {
		attrs[k] = v
	}
	after.Attributes = attrs
	return &after
}

func sameUser(a, b *directory.User) bool {
	if a.Name != b.Name || a.Email != b.Email || a.Mobile != b.Mobile || a.Status != b.Status || a.Username != b.Username {
		return false
	}
	if len(a.Attributes) != len(b.Attributes) {
		return false
	}
	for k, v := range a.Attributes {
		if b.Attributes[k] != v {
			return false
		}
	}
	return true
}

// apply writes the plan in one transaction, with its records, and returns the users to revoke.
func (e *Engine) apply(ctx context.Context, task *directory.SyncTask, p *Plan, progress func(int)) ([]string, error) {
	var departed []string
	total := len(p.Depts) + len(p.Users)
	err := e.Store.InTx(ctx, func(tx directory.Store) error {
		departed = departed[:0]
		var recs []*directory.SyncRecord
		flush := func() error {
			if len(recs) == 0 {
				return nil
			}
			err := tx.AddSyncRecords(ctx, recs)
			recs = recs[:0]
			return err
		}
		done := 0
		step := func() error {
			done++
			if done%2000 == 0 {
				progress(done)
				if err := flush(); err != nil {
					return err
				}
			}
			if e.midApply != nil && done == total/2 {
				return e.midApply()
			}
			return ctx.Err()
		}
		// Parents before children for creates; children before parents for deletes.
		for _, d := range p.Depts {
			if d.Action == ActDelete {
				continue
			}
			if err := tx.PutDepartment(ctx, d.After); err != nil {
				return fmt.Errorf("department %s: %w", d.After.UpstreamID, err)
			}
			recs = append(recs, &directory.SyncRecord{TaskID: task.ID, ObjectType: "department", UpstreamID: d.After.UpstreamID,
				Action: d.Action, Upstream: d.Upstream.Raw, LocalBefore: deptJSON(d.Before), LocalAfter: deptJSON(d.After)})
			if err := step(); err != nil {
				return err
			}
		}
		for _, uc := range p.Users {
			rec := &directory.SyncRecord{TaskID: task.ID, ObjectType: "user", UpstreamID: uc.UpstreamID, Action: uc.Action, Error: uc.Error}
			rec.Upstream = uc.Upstream
			switch uc.Action {
			case ActCreate:
				if err := tx.CreateUser(ctx, uc.After); err != nil {
					return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
				}
				uc.LinkAfter.UserID = uc.After.ID
				if err := tx.PutUserLink(ctx, uc.LinkAfter); err != nil {
					return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
				}
			case ActUpdate, ActMove:
				if uc.Action == ActUpdate || !sameUser(uc.Before, uc.After) {
					if err := tx.UpdateUser(ctx, uc.After); err != nil {
						return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
					}
				}
				if err := tx.PutUserLink(ctx, uc.LinkAfter); err != nil {
					return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
				}
			case ActDelete:
				if err := tx.DeleteUserLink(ctx, uc.LinkBefore.EnterpriseID, uc.LinkBefore.SourceID, uc.UpstreamID); err != nil {
					return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
				}
				// A user still linked to another source stays as that source says.
				others, err := tx.LinksOfUser(ctx, uc.Before.EnterpriseID, uc.Before.ID)
				if err != nil {
					return err
				}
				if len(others) == 0 && uc.Before.Status != directory.UserDeparted {
					if err := tx.UpdateUser(ctx, uc.After); err != nil {
						return fmt.Errorf("user %s: %w", uc.UpstreamID, err)
					}
				} else {
					uc.After = uc.Before
					uc.Departs = false
				}
			}
			rec.LocalBefore, rec.LocalAfter = linkJSON(uc.Before, uc.LinkBefore), linkJSON(uc.After, uc.LinkAfter)
			if uc.Action == ActDelete {
				rec.LocalAfter = userJSON(uc.After)
			}
			recs = append(recs, rec)
			if uc.Departs && uc.Before != nil {
				departed = append(departed, uc.Before.ID)
			}
			if err := step(); err != nil {
				return err
			}
		}
		dels := slices.Clone(p.Depts)
		slices.Reverse(dels)
		for _, d := range dels {
			if d.Action != ActDelete {
				continue
			}
			if err := tx.DeleteDepartment(ctx, d.Before.EnterpriseID, d.Before.SourceID, d.Before.UpstreamID); err != nil {
				return fmt.Errorf("department %s: %w", d.Before.UpstreamID, err)
			}
			recs = append(recs, &directory.SyncRecord{TaskID: task.ID, ObjectType: "department", UpstreamID: d.Before.UpstreamID,
				Action: ActDelete, LocalBefore: deptJSON(d.Before)})
			if err := step(); err != nil {
				return err
			}
		}
		return flush()
	})
	if err != nil {
		return nil, err
	}
	return departed, nil
}
