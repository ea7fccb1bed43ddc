package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/internal/state"
)

// Defaults of the worker.
const (
	DefaultPoll        = 500 * time.Millisecond
	DefaultMaxAttempts = 8
	claimFor           = 2 * time.Minute
	batch              = 200
)

// Service pushes enterprises' directories to their targets. One worker per process drains the
// outbox (Run); claims make several processes safe (each item goes to one), and a per-enterprise
// lock keeps a reconcile and the worker of one process from pushing the same enterprise at once.
type Service struct {
	Store directory.Store
	// Open opens the writer of a target (the gateway links the connectors).
	Open func(t *directory.ProvisionTarget) (federation.DirectoryWriter, error)
	Log  *slog.Logger
	Now  func() time.Time
	// Poll is how often the outbox is looked at (changes are written by triggers, whoever makes
	// them, so polling is what finds them); MaxAttempts parks an item failing this often.
	Poll        time.Duration
	MaxAttempts int
	// RetryBase is the first retry's delay, doubled each attempt up to RetryMax.
	RetryBase, RetryMax time.Duration
	// Notify wakes the worker early.
	Notify chan struct{}
	// State, when set, holds each enterprise's push lock across processes (replicas on one
	// database): a reconcile started by hand on one replica and the worker or a scheduled
	// reconcile on another never push the same enterprise at once. Without it the lock is this
	// process's only (one process on its database).
	State state.Store

	mu    sync.Mutex
	locks map[string]chan struct{}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// ErrUnsupported: the store does not keep provisioning state.
var ErrUnsupported = errors.New("this store does not support provisioning")

func (s *Service) ps() (directory.ProvisionStore, error) {
	ps, ok := s.Store.(directory.ProvisionStore)
	if !ok {
		return nil, ErrUnsupported
	}
	return ps, nil
}

// lockTTL is how long an enterprise's push lock outlives a process that died holding it; the
// holder refreshes it while it pushes.
const lockTTL = 30 * time.Second

// ErrBusy: another push of the enterprise (on this replica or another) held its lock for longer
// than the caller would wait.
var ErrBusy = errors.New("a push of this enterprise is running; try again when it has finished")

// lock takes the enterprise's push lock: this process's, then (with State) every process's,
// waiting for whoever holds it up to wait (0: until ctx ends), else ErrBusy. The returned context
// ends when ctx does or when the lock is lost (a refresh failed: another replica may take it),
// so a push that lost it stops; the returned func gives the lock back.
func (s *Service) lock(ctx context.Context, ent string, wait time.Duration) (context.Context, func(), error) {
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	if !s.localLockWithin(ctx, ent, deadline) {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, ErrBusy
	}
	unlock := func() { s.localUnlock(ent) }
	if s.State == nil {
		return ctx, unlock, nil
	}
	key := "provision:" + ent
	for {
		l, err := s.State.Lock(ctx, key, lockTTL)
		if err == nil {
			held, lost := context.WithCancel(ctx)
			stop := state.Keep(context.WithoutCancel(ctx), l, lockTTL, func(err error) {
				s.log().Warn("provisioning: the enterprise's push lock was lost; the push stops", "enterprise", ent, "err", err)
				lost()
			})
			return held, func() {
				stop()
				lost()
				_ = l.Release(context.WithoutCancel(ctx))
				unlock()
			}, nil
		}
		if !errors.Is(err, state.ErrLocked) {
			unlock()
			return nil, nil, fmt.Errorf("provisioning: take %s's push lock: %w", ent, err)
		}
		select {
		case <-ctx.Done():
			unlock()
			return nil, nil, ctx.Err()
		case <-deadline:
			unlock()
			return nil, nil, ErrBusy
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// localLockWithin takes this process's lock of the enterprise (a one-slot channel, so waiting
// for it can give up) unless ctx ends or deadline passes first.
func (s *Service) localLockWithin(ctx context.Context, ent string, deadline <-chan time.Time) bool {
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]chan struct{}{}
	}
	l := s.locks[ent]
	if l == nil {
		l = make(chan struct{}, 1)
		s.locks[ent] = l
	}
	s.mu.Unlock()
	select {
	case l <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-deadline:
		return false
	}
}

func (s *Service) localUnlock(ent string) {
	s.mu.Lock()
	l := s.locks[ent]
	s.mu.Unlock()
	<-l
}

// Wake asks the worker to look at the outbox now.
func (s *Service) Wake() {
	if s.Notify == nil {
		return
	}
	select {
	case s.Notify <- struct{}{}:
	default:
	}
}

// Run drains the outbox until ctx ends, and runs the scheduled reconciles (a single process).
func (s *Service) Run(ctx context.Context) { s.run(ctx, true) }

// RunOutbox drains the outbox until ctx ends; every replica may (claims), while Schedule runs on
// one at a time (a lease).
func (s *Service) RunOutbox(ctx context.Context) { s.run(ctx, false) }

func (s *Service) run(ctx context.Context, schedule bool) {
	poll := s.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	lastSchedule := time.Time{}
	for {
		if _, err := s.Drain(ctx); err != nil && ctx.Err() == nil {
			s.log().Warn("provisioning: drain the outbox", "err", err)
		}
		if schedule && s.now().Sub(lastSchedule) >= time.Minute {
			lastSchedule = s.now()
			s.Schedule(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.Notify:
		}
	}
}

// Drain pushes every due outbox item and returns how many it handled.
func (s *Service) Drain(ctx context.Context) (int, error) {
	ps, err := s.ps()
	if err != nil {
		return 0, err
	}
	n := 0
	for ctx.Err() == nil {
		now := s.now()
		items, err := ps.ClaimOutbox(ctx, now, now.Add(claimFor), batch)
		if err != nil {
			return n, err
		}
		if len(items) == 0 {
			return n, nil
		}
		byEnt := map[string][]*directory.OutboxItem{}
		var ents []string
		for _, it := range items {
			if byEnt[it.EnterpriseID] == nil {
				ents = append(ents, it.EnterpriseID)
			}
			byEnt[it.EnterpriseID] = append(byEnt[it.EnterpriseID], it)
		}
		for _, ent := range ents {
			if err := s.pushItems(ctx, ps, ent, byEnt[ent]); err != nil {
				return n, err
			}
		}
		n += len(items)
		if len(items) < batch {
			// The outbox is drained; an item put back for a retry waits for the next turn.
			return n, nil
		}
	}
	return n, ctx.Err()
}

// pushItems pushes one enterprise's claimed items: each object once (the newest row stands for
// the others), departments first, people next, department removals last.
func (s *Service) pushItems(ctx context.Context, ps directory.ProvisionStore, ent string, items []*directory.OutboxItem) error {
	ctx, unlock, err := s.lock(ctx, ent, 0)
	if err != nil {
		return err
	}
	defer unlock()
	t, err := ps.GetProvisionTarget(ctx, ent)
	if errors.Is(err, directory.ErrNotFound) || (err == nil && !t.Enabled) {
		return ps.DoneOutbox(ctx, items) // no target any more: nothing to push
	}
	if err != nil {
		return err
	}
	p, err := s.pusher(ctx, ps, t, "", false)
	if err != nil {
		return s.failAll(ctx, ps, items, err)
	}
	type obj struct {
		typ, key string
		rows     []*directory.OutboxItem
	}
	objs := map[string]*obj{}
	var order []*obj
	for _, it := range items {
		k := it.ObjectType + "\x00" + it.ObjectKey
		o := objs[k]
		if o == nil {
			o = &obj{typ: it.ObjectType, key: it.ObjectKey}
			objs[k] = o
			order = append(order, o)
		}
		o.rows = append(o.rows, it)
	}
	sort.SliceStable(order, func(i, j int) bool {
		return order[i].typ == directory.ProvisionDepartment && order[j].typ != directory.ProvisionDepartment
	})
	var done []*directory.OutboxItem
	var later []*obj
	for _, o := range order {
		if ctx.Err() != nil {
			break // shutting down: the rest keep their claims, which expire, and are pushed again
		}
		var err error
		if o.typ == directory.ProvisionDepartment {
			err = p.pushDept(ctx, o.key, false)
		} else {
			err = p.pushUser(ctx, o.key, false)
		}
		if errors.Is(err, federation.ErrNotEmpty) {
			later = append(later, o) // after this batch's people have left it
			continue
		}
		if ctx.Err() != nil {
			break // a push cut short by shutdown is neither a failure nor done: it is pushed again
		}
		done = append(done, s.settle(ctx, ps, o.rows, err)...)
	}
	for _, o := range later {
		if ctx.Err() != nil {
			break
		}
		done = append(done, s.settle(ctx, ps, o.rows, p.pushDept(ctx, o.key, false))...)
	}
	// What was pushed is recorded even when shutdown interrupted the rest.
	bctx := context.WithoutCancel(ctx)
	if err := ps.AddProvisionRecords(bctx, p.records); err != nil {
		return err
	}
	return ps.DoneOutbox(bctx, done)
}

// settle decides the rows of one object: all done on success; otherwise the newest is retried
// with backoff (or parked with the error when it cannot succeed as it is, or has failed
// MaxAttempts times) and the older ones are done.
func (s *Service) settle(ctx context.Context, ps directory.ProvisionStore, rows []*directory.OutboxItem, err error) []*directory.OutboxItem {
	if err == nil {
		return rows
	}
	last := rows[len(rows)-1]
	for _, r := range rows[:len(rows)-1] {
		last.Attempts = max(last.Attempts, r.Attempts)
	}
	last.Attempts++
	last.ErrCode, last.Error = errCode(err), err.Error()
	max := s.MaxAttempts
	if max <= 0 {
		max = DefaultMaxAttempts
	}
	if retryable(err) && last.Attempts < max {
		last.Status, last.NextAt = directory.OutboxPending, s.now().Add(s.delay(last.Attempts))
	} else {
		last.Status = directory.OutboxParked
		s.log().Warn("provisioning: parked", "enterprise", last.EnterpriseID, "object", last.ObjectType+":"+last.ObjectKey, "errcode", last.ErrCode, "err", err)
	}
	if rerr := ps.RetryOutbox(ctx, last); rerr != nil {
		s.log().Error("provisioning: store a retry", "err", rerr)
	}
	return rows[:len(rows)-1]
}

func (s *Service) failAll(ctx context.Context, ps directory.ProvisionStore, items []*directory.OutboxItem, err error) error {
	byObj := map[string][]*directory.OutboxItem{}
	var keys []string
	for _, it := range items {
		k := it.ObjectType + "\x00" + it.ObjectKey
		if byObj[k] == nil {
			keys = append(keys, k)
		}
		byObj[k] = append(byObj[k], it)
	}
	var done []*directory.OutboxItem
	for _, k := range keys {
		done = append(done, s.settle(ctx, ps, byObj[k], &problem{Message: "the target cannot be opened: " + err.Error()})...)
	}
	return ps.DoneOutbox(ctx, done)
}

// retryable: the platform was busy or unreachable, or a department still had members: trying again
// later may succeed with the same data.
func retryable(err error) bool {
	var pr *problem
	if errors.As(err, &pr) {
		return false
	}
	if errors.Is(err, federation.ErrTransient) || errors.Is(err, federation.ErrNotEmpty) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var fe *federation.Error
	if errors.As(err, &fe) {
		return false // the platform refused the data
	}
	return true // the store, or something else of ours
}

func (s *Service) delay(attempt int) time.Duration {
	base, maxd := s.RetryBase, s.RetryMax
	if base <= 0 {
		base = 2 * time.Second
	}
	if maxd <= 0 {
		maxd = 5 * time.Minute
	}
	d := base << (attempt - 1)
	if d > maxd || d <= 0 {
		d = maxd
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (s *Service) pusher(ctx context.Context, ps directory.ProvisionStore, t *directory.ProvisionTarget, taskID string, dry bool) (*pusher, error) {
	if s.Open == nil {
		return nil, errors.New("no connector can write to targets of kind " + string(t.Kind))
	}
	w, err := s.Open(t)
	if err != nil {
		return nil, err
	}
	sc, err := loadScope(ctx, s.Store, t)
	if err != nil {
		return nil, err
	}
	return &pusher{sc: sc, ps: ps, w: w, taskID: taskID, dryRun: dry, ensuring: map[string]bool{}, planned: map[string]string{}}, nil
}

// Schedule runs the reconciles that are due: a new target's initial push, then every cycle.
func (s *Service) Schedule(ctx context.Context) {
	ps, err := s.ps()
	if err != nil {
		return
	}
	ts, err := ps.ListProvisionTargets(ctx)
	if err != nil {
		s.log().Warn("provisioning: list targets", "err", err)
		return
	}
	for _, t := range ts {
		if !t.Enabled {
			continue
		}
		last, err := ps.ListProvisionTasks(ctx, t.EnterpriseID, 1)
		if err != nil {
			continue
		}
		// A new target gets its initial push (what the directory held before the target
		// existed wrote no outbox rows); after that, every cycle.
		trigger := "initial"
		if len(last) > 0 {
			if t.Settings.CycleHours <= 0 || s.now().Sub(last[0].StartedAt) < time.Duration(t.Settings.CycleHours)*time.Hour {
				continue
			}
			trigger = "schedule"
		}
		if _, err := s.Reconcile(ctx, t.EnterpriseID, ReconcileOptions{Trigger: trigger}); err != nil {
			s.log().Warn("provisioning: scheduled reconcile", "enterprise", t.EnterpriseID, "err", err)
		}
	}
}

// Status is an enterprise's provisioning at a glance.
type Status struct {
	Pending, Parked int
	Managed         map[string]int // objects qiao created at the target, by type
	LastTask        *directory.ProvisionTask
}

// StatusOf reports an enterprise's outbox and what qiao manages at its target.
func (s *Service) StatusOf(ctx context.Context, ent string) (*Status, error) {
	ps, err := s.ps()
	if err != nil {
		return nil, err
	}
	c, err := ps.CountOutbox(ctx, ent)
	if err != nil {
		return nil, err
	}
	st := &Status{Pending: c[directory.OutboxPending], Parked: c[directory.OutboxParked], Managed: map[string]int{}}
	for _, typ := range []string{directory.ProvisionUser, directory.ProvisionDepartment} {
		objs, err := ps.ListProvisionedObjects(ctx, ent, typ)
		if err != nil {
			return nil, err
		}
		st.Managed[typ] = len(objs)
	}
	if ts, err := ps.ListProvisionTasks(ctx, ent, 1); err == nil && len(ts) > 0 {
		st.LastTask = ts[0]
	}
	return st, nil
}

// Test checks a target's connectivity: the writer opens, and (when it can) the platform's own
// check (token, write permission, egress IP, root department).
func (s *Service) Test(ctx context.Context, t *directory.ProvisionTarget) error {
	if s.Open == nil {
		return errors.New("no connector can write to targets of kind " + string(t.Kind))
	}
	w, err := s.Open(t)
	if err != nil {
		return err
	}
	if c, ok := w.(interface {
		CheckWrite(ctx context.Context, root string) error
	}); ok {
		return c.CheckWrite(ctx, t.Settings.RootDepartment)
	}
	return fmt.Errorf("targets of kind %s have no connectivity check", t.Kind)
}
