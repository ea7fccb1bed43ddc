package provision_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/provision"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
	"github.com/qiao-gateway/qiao/federation/upstream"
	"github.com/qiao-gateway/qiao/federation/wecom"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/secretbox"
	"github.com/qiao-gateway/qiao/internal/state"
)

const ent = "acme"

type env struct {
	st    *sqlstore.Store
	setup *wecomsim.Setup
	org   *simorg.Org
	svc   *provision.Service
	tgt   *directory.ProvisionTarget
	base  string
	sim   *wecomsim.Sim
}

func stores(t *testing.T) map[string]func(t *testing.T) *sqlstore.Store {
	bx, err := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]func(t *testing.T) *sqlstore.Store{
		"sqlite": func(t *testing.T) *sqlstore.Store {
			s, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "q.db"), bx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	if base := os.Getenv("QIAO_TEST_POSTGRES"); base != "" {
		out["postgres"] = func(t *testing.T) *sqlstore.Store {
			s, err := sqlstore.Open(context.Background(), pgtemp.New(t, base, "qiao_prov"), bx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
	return out
}

// newEnv: enterprise acme with a local source and a WeCom source of the simulated corp (its
// people came from there), and a provisioning target pushing into that corp under department 1.
func newEnv(t *testing.T, open func(t *testing.T) *sqlstore.Store, mod func(*directory.ProvisionTarget)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{st: open(t), setup: wecomsim.NewSetup(20, 11, "127.0.0.1:1")}
	e.setup.Config.RateLimits = false
	e.org = e.setup.Config.Org
	sim := wecomsim.New(e.setup.Config)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	e.base, e.sim = srv.URL, sim
	must(t, e.st.PutEnterprise(ctx, &directory.Enterprise{ID: ent, Name: "Acme"}))
	must(t, e.st.PutSource(ctx, &directory.IdentitySource{EnterpriseID: ent, ID: "local", Kind: directory.KindLocal, Name: "本地", Enabled: true, Sync: directory.DefaultSyncSettings()}))
	must(t, e.st.PutSource(ctx, &directory.IdentitySource{EnterpriseID: ent, ID: "wecom", Kind: directory.KindWeCom, Name: "企业微信", Enabled: true, Sync: directory.DefaultSyncSettings(),
		Config: map[string]string{"corp_id": e.setup.CorpID}}))
	e.tgt = &directory.ProvisionTarget{EnterpriseID: ent, Kind: directory.KindWeCom, Enabled: true, AutoPush: true, Settings: directory.DefaultProvisionSettings(),
		Config:  map[string]string{"corp_id": e.setup.CorpID, "api_base_url": srv.URL, "rate_limit": "off"},
		Secrets: map[string]string{"contact_secret": e.setup.ContactSecret}}
	if mod != nil {
		mod(e.tgt)
	}
	must(t, e.st.PutProvisionTarget(ctx, e.tgt))
	e.svc = &provision.Service{Store: e.st, Poll: 50 * time.Millisecond, RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, MaxAttempts: 3,
		Open: func(t *directory.ProvisionTarget) (federation.DirectoryWriter, error) {
			s, err := wecom.WriterSettings(t.Config, t.Secrets)
			if err != nil {
				return nil, err
			}
			w, err := wecom.NewWriter(s)
			if err != nil {
				return nil, err
			}
			w.Client().SetBackoff(upstream.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 2})
			return w, nil
		}}
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// run starts the outbox worker for the test's life.
func (e *env) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// wecomUser reads a person of the simulated corp (nil when absent).
func (e *env) wecomUser(id string) *simorg.User {
	e.org.RLock()
	defer e.org.RUnlock()
	if u := e.org.User(id); u != nil {
		return u.Clone()
	}
	return nil
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) localUser(t *testing.T, username, name, mobile string, depts ...string) *directory.User {
	t.Helper()
	ctx := context.Background()
	u := &directory.User{EnterpriseID: ent, Username: username, Name: name, Mobile: mobile, Email: username + "@acme.example", Status: directory.UserActive}
	must(t, e.st.InTx(ctx, func(tx directory.Store) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		return tx.PutUserLink(ctx, &directory.UserLink{EnterpriseID: ent, SourceID: "local", UpstreamID: username, UserID: u.ID, Departments: depts})
	}))
	return u
}

func (e *env) dept(t *testing.T, id, parent, name string) {
	t.Helper()
	must(t, e.st.PutDepartment(context.Background(), &directory.Department{EnterpriseID: ent, SourceID: "local", UpstreamID: id, ParentID: parent, Name: name}))
}

func (e *env) remoteDeptID(t *testing.T, key string) string {
	t.Helper()
	o, err := e.st.GetProvisionedObject(context.Background(), ent, directory.ProvisionDepartment, key)
	if err != nil {
		return ""
	}
	return o.RemoteID
}

func (e *env) wecomDeptName(id string) string {
	e.org.RLock()
	defer e.org.RUnlock()
	var n int
	for _, c := range id {
		n = n*10 + int(c-'0')
	}
	if d := e.org.Dept(n); d != nil {
		return d.Name
	}
	return ""
}

// TestIncrementalPush: a local person appears in WeCom, then follows a move, a rename, a
// disable and a departure; a department subtree is created parents first and removed children
// first; a person who came from WeCom is never pushed back.
func TestIncrementalPush(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open, nil)
			e.run(t)
			ctx := context.Background()
			lisi := e.localUser(t, "lisi", "李四", "13911110001")
			waitFor(t, "lisi in WeCom", func() bool { u := e.wecomUser("lisi"); return u != nil && u.Name == "李四" })
			if u := e.wecomUser("lisi"); len(u.Depts) != 1 || u.Depts[0] != 1 || u.Mobile != "13911110001" {
				t.Fatalf("lisi in WeCom = %+v", u)
			}
			// A subtree: 研发 > 平台 > 网关; lisi moves into 网关.
			e.dept(t, "10", "", "研发")
			e.dept(t, "11", "10", "平台")
			e.dept(t, "12", "11", "网关")
			must(t, e.st.PutUserLink(ctx, &directory.UserLink{EnterpriseID: ent, SourceID: "local", UpstreamID: "lisi", UserID: lisi.ID, Departments: []string{"12"}}))
			waitFor(t, "lisi moved into 网关", func() bool {
				u := e.wecomUser("lisi")
				gw := e.remoteDeptID(t, "local/12")
				return gw != "" && u != nil && len(u.Depts) == 1 && e.wecomDeptName(gw) == "网关" && itoa(u.Depts[0]) == gw
			})
			e.org.RLock()
			gw, pf, rd := e.org.Dept(atoi(e.remoteDeptID(t, "local/12"))), e.org.Dept(atoi(e.remoteDeptID(t, "local/11"))), e.org.Dept(atoi(e.remoteDeptID(t, "local/10")))
			e.org.RUnlock()
			if rd.ParentID != 1 || pf.ParentID != rd.ID || gw.ParentID != pf.ID {
				t.Fatalf("subtree in WeCom: 研发 %+v 平台 %+v 网关 %+v", rd, pf, gw)
			}
			// Rename and disable.
			lisi.Name, lisi.Status = "李四四", directory.UserDisabled
			must(t, e.st.UpdateUser(ctx, lisi))
			waitFor(t, "lisi renamed and disabled", func() bool {
				u := e.wecomUser("lisi")
				return u != nil && u.Name == "李四四" && u.Status == simorg.StatusDisabled
			})
			// A department rename follows too.
			e.dept(t, "11", "10", "平台组")
			waitFor(t, "平台 renamed", func() bool { return e.wecomDeptName(e.remoteDeptID(t, "local/11")) == "平台组" })
			// Departure deletes; the subtree then goes, children first (the platform refuses a
			// department with members or children).
			lisi.Status = directory.UserDeparted
			must(t, e.st.UpdateUser(ctx, lisi))
			waitFor(t, "lisi deleted", func() bool { return e.wecomUser("lisi") == nil })
			rid := e.remoteDeptID(t, "local/10")
			must(t, e.st.InTx(ctx, func(tx directory.Store) error {
				for _, id := range []string{"10", "11", "12"} { // parents first: the worker must reorder
					if err := tx.DeleteDepartment(ctx, ent, "local", id); err != nil {
						return err
					}
				}
				return nil
			}))
			waitFor(t, "subtree removed", func() bool { return e.wecomDeptName(rid) == "" && e.remoteDeptID(t, "local/10") == "" })
			// zhangsan came from WeCom (linked to the wecom source of the same corp): a local edit
			// of him is not pushed back.
			before := e.wecomUser("zhangsan")
			zs := &directory.User{EnterpriseID: ent, Username: "zhangsan", Name: "本地张三", Email: "zs@acme.example", Status: directory.UserActive}
			must(t, e.st.InTx(ctx, func(tx directory.Store) error {
				if err := tx.CreateUser(ctx, zs); err != nil {
					return err
				}
				if err := tx.PutUserLink(ctx, &directory.UserLink{EnterpriseID: ent, SourceID: "wecom", UpstreamID: "zhangsan", UserID: zs.ID}); err != nil {
					return err
				}
				return tx.PutUserLink(ctx, &directory.UserLink{EnterpriseID: ent, SourceID: "local", UpstreamID: "zhangsan", UserID: zs.ID})
			}))
			waitFor(t, "the outbox drained", func() bool { c, _ := e.st.CountOutbox(ctx, ent); return c[directory.OutboxPending] == 0 })
			if after := e.wecomUser("zhangsan"); after.Name != before.Name {
				t.Fatalf("zhangsan was pushed back into WeCom: %q → %q", before.Name, after.Name)
			}
			recs, _ := e.st.ListProvisionRecords(ctx, directory.ProvisionRecordQuery{EnterpriseID: ent, Limit: 200})
			actions := map[string]int{}
			for _, r := range recs {
				actions[r.Action]++
			}
			for _, a := range []string{"create", "move", "update", "delete"} {
				if actions[a] == 0 {
					t.Fatalf("no %s record: %v", a, actions)
				}
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestConflictParked: a mobile number WeCom already has is parked with a message naming the
// field; fixing the number pushes the person and clears the parked item.
func TestConflictParked(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open, nil)
			e.run(t)
			ctx := context.Background()
			e.org.RLock()
			taken := e.org.User("zhangsan").Mobile
			e.org.RUnlock()
			wang := e.localUser(t, "wangwu", "王五", taken)
			waitFor(t, "wangwu parked", func() bool {
				items, _ := e.st.ListOutbox(ctx, ent, directory.OutboxParked, 10)
				return len(items) == 1
			})
			items, _ := e.st.ListOutbox(ctx, ent, directory.OutboxParked, 10)
			if items[0].ErrCode != 60104 || !strings.Contains(items[0].Error, "mobile number is already used") || items[0].ObjectKey != wang.ID {
				t.Fatalf("parked = %+v", items[0])
			}
			if e.wecomUser("wangwu") != nil {
				t.Fatal("wangwu created despite the conflict")
			}
			wang.Mobile = "13922220002"
			must(t, e.st.UpdateUser(ctx, wang))
			waitFor(t, "wangwu pushed once the number is fixed", func() bool { return e.wecomUser("wangwu") != nil })
			waitFor(t, "the parked item cleared", func() bool {
				c, _ := e.st.CountOutbox(ctx, ent)
				return c[directory.OutboxParked] == 0
			})
			// Someone else's userid is never taken over: a local zhangsan who is not linked to
			// the WeCom source meets WeCom's zhangsan.
			before := e.wecomUser("zhangsan")
			zs := e.localUser(t, "zhangsan", "另一个张三", "13922220003")
			waitFor(t, "local zhangsan parked", func() bool {
				items, _ := e.st.ListOutbox(ctx, ent, directory.OutboxParked, 10)
				return len(items) == 1 && items[0].ObjectKey == zs.ID
			})
			items, _ = e.st.ListOutbox(ctx, ent, directory.OutboxParked, 10)
			if items[0].ErrCode != 60102 || !strings.Contains(items[0].Error, "did not create it") {
				t.Fatalf("parked = %+v", items[0])
			}
			if after := e.wecomUser("zhangsan"); after.Name != before.Name || after.Mobile != before.Mobile {
				t.Fatalf("WeCom's zhangsan was taken over: %+v", after)
			}
			if _, err := e.st.GetProvisionedObject(ctx, ent, directory.ProvisionUser, zs.ID); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("WeCom's zhangsan is remembered as qiao's: %v", err)
			}
		})
	}
}

// TestRetriesThenParks: 5xx answers are retried with backoff; a person the platform keeps
// refusing with a transient error is parked after MaxAttempts.
func TestRetriesThenParks(t *testing.T) {
	e := newEnv(t, stores(t)["sqlite"], nil)
	ctx := context.Background()
	e.localUser(t, "zhaoliu", "赵六", "13933330003")
	for i := 0; i < 3; i++ {
		// Each attempt meets -1 (system busy) on both of its calls.
		e.sim.Kit().AddFault(simkit.Fault{API: "user/create", ErrCode: -1, Count: 2})
		if _, err := e.svc.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		items, _ := e.st.ListOutbox(ctx, ent, directory.OutboxPending, 10)
		parked, _ := e.st.ListOutbox(ctx, ent, directory.OutboxParked, 10)
		if i < 2 && (len(items) != 1 || items[0].Attempts != i+1) {
			t.Fatalf("attempt %d: pending %+v parked %+v", i+1, items, parked)
		}
		if i == 2 && (len(parked) != 1 || parked[0].ErrCode != -1) {
			t.Fatalf("not parked after 3 attempts: %+v", parked)
		}
		if len(items) == 1 {
			time.Sleep(time.Until(items[0].NextAt)) // the backoff: the item is not due before
		}
	}
	if e.wecomUser("zhaoliu") != nil {
		t.Fatal("created through the faults")
	}
}

// TestCrashBetweenWriteAndPush simulates a crash (the process dies holding a claim, and again
// after WeCom created the person but before the answer was stored): the item is claimed again
// once its claim expires, and the repeated create adopts the person instead of failing 60102.
// It is a simulation in one process — the claim is abandoned, not a SIGKILLed subprocess.
func TestCrashBetweenWriteAndPush(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open, nil)
			ctx := context.Background()
			u := e.localUser(t, "sunqi", "孙七", "13944440004")
			// 1. A worker claims the items and dies.
			now := time.Now()
			claimed, err := e.st.ClaimOutbox(ctx, now, now.Add(time.Minute), 100)
			if err != nil || len(claimed) == 0 {
				t.Fatalf("claim: %d, %v", len(claimed), err)
			}
			if n, _ := e.svc.Drain(ctx); n != 0 {
				t.Fatalf("a live claim was taken by another worker (%d)", n)
			}
			// 2. Meanwhile the dead worker had sent the create, and WeCom made the person; its
			// intent was stored, its answer was not.
			must(t, e.st.PutProvisionedObject(ctx, &directory.ProvisionedObject{EnterpriseID: ent, ObjectType: directory.ProvisionUser, LocalKey: u.ID,
				RemoteID: "sunqi", State: directory.ProvisionCreating}))
			_, err = e.org.PutUser(&simorg.User{UserID: "sunqi", Name: "孙七", Mobile: "13944440004", Depts: []int{1}, Status: 1}, true)
			must(t, err)
			// 3. After the claim expires a restarted worker pushes: adopt, not 60102.
			e.svc.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
			if _, err := e.svc.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			c, _ := e.st.CountOutbox(ctx, ent)
			if c[directory.OutboxPending]+c[directory.OutboxParked] != 0 {
				t.Fatalf("outbox after restart: %v", c)
			}
			o, err := e.st.GetProvisionedObject(ctx, ent, directory.ProvisionUser, u.ID)
			if err != nil || o.State != directory.ProvisionPresent {
				t.Fatalf("object = %+v, %v", o, err)
			}
			recs, _ := e.st.ListProvisionRecords(ctx, directory.ProvisionRecordQuery{EnterpriseID: ent})
			if len(recs) == 0 || recs[0].Action != "adopt" || recs[0].Error != "" {
				t.Fatalf("records = %+v", recs[0])
			}
		})
	}
}

// TestReconcile: a dry run plans without writing; the reconcile creates the subtree and people,
// repairs drift made in WeCom behind qiao's back, leaves WeCom's own people alone, and deletion
// protection cancels a reconcile that would delete more than the threshold.
func TestReconcile(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open, func(tg *directory.ProvisionTarget) { tg.AutoPush = false; tg.Settings.DeleteUsers = 2 })
			ctx := context.Background()
			e.dept(t, "20", "", "销售")
			e.dept(t, "21", "20", "华东")
			var ids []string
			for i, n := range []string{"周一", "吴二", "郑三", "王四"} {
				u := e.localUser(t, "sales"+itoa(i+1), n, "1395555000"+itoa(i+1), "21")
				ids = append(ids, u.ID)
			}
			usersBefore := len(e.org.UserIDs())
			dry, err := e.svc.Reconcile(ctx, ent, provision.ReconcileOptions{DryRun: true})
			if err != nil || dry.Status != directory.TaskSucceeded || dry.Counts["planned-create"] != 6 {
				t.Fatalf("dry run = %+v, %v", dry, err)
			}
			if len(e.org.UserIDs()) != usersBefore {
				t.Fatal("a dry run wrote to WeCom")
			}
			task, err := e.svc.Reconcile(ctx, ent, provision.ReconcileOptions{})
			if err != nil || task.Status != directory.TaskSucceeded || task.Counts["create"] != 6 || task.Counts["unmanaged"] != usersBefore {
				t.Fatalf("reconcile = %+v, %v", task, err)
			}
			// Drift: an admin renamed a person in WeCom; the next reconcile puts it back.
			u := e.wecomUser("sales1")
			u.Name = "改过"
			_, _ = e.org.PutUser(u, false)
			again, err := e.svc.Reconcile(ctx, ent, provision.ReconcileOptions{})
			if err != nil || again.Counts["update"] != 1 || e.wecomUser("sales1").Name != "周一" {
				t.Fatalf("second reconcile = %+v, %v (sales1 %q)", again, err, e.wecomUser("sales1").Name)
			}
			// Three people leave the directory: over the threshold of 2.
			for _, id := range ids[:3] {
				must(t, e.st.DeleteUser(ctx, ent, id))
			}
			prot, err := e.svc.Reconcile(ctx, ent, provision.ReconcileOptions{})
			if err != nil || prot.Status != directory.TaskCancelled || !strings.Contains(prot.Reason, "deletion protection") || e.wecomUser("sales1") == nil {
				t.Fatalf("protected reconcile = %+v, %v", prot, err)
			}
			forced, err := e.svc.Reconcile(ctx, ent, provision.ReconcileOptions{Force: true})
			if err != nil || forced.Counts["delete"] != 3 || e.wecomUser("sales1") != nil || e.wecomUser("sales4") == nil {
				t.Fatalf("forced reconcile = %+v, %v", forced, err)
			}
			recs, _ := e.st.ListProvisionRecords(ctx, directory.ProvisionRecordQuery{EnterpriseID: ent, TaskID: forced.ID})
			for _, r := range recs {
				if r.Action == "delete" && !strings.Contains(string(r.Before), `"userid":"sales`) {
					t.Fatalf("a delete record without WeCom's before: %s", r.Before)
				}
			}
		})
	}
}

// TestPushLockIsSharedAcrossProcesses: with a shared state store (replicas on one database), a
// reconcile waits while another process holds the enterprise's push lock, and once it has the
// lock it marks a task a dead process left running as interrupted.
func TestPushLockIsSharedAcrossProcesses(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open, func(tg *directory.ProvisionTarget) { tg.AutoPush = false })
			ctx := context.Background()
			st := state.NewMemory()
			t.Cleanup(func() { st.Close() })
			e.svc.State = st
			dead := &directory.ProvisionTask{EnterpriseID: ent, Trigger: "manual"}
			must(t, e.st.CreateProvisionTask(ctx, dead))
			other, err := st.Lock(ctx, "provision:"+ent, time.Minute) // another replica pushing
			must(t, err)
			// "Push now" does not hang behind it: past its wait it is busy, and starts nothing.
			if _, err := e.svc.Reconcile(ctx, ent, provision.ReconcileOptions{DryRun: true, Wait: 200 * time.Millisecond}); !errors.Is(err, provision.ErrBusy) {
				t.Fatalf("a reconcile with a wait while the lock is held elsewhere: %v, want ErrBusy", err)
			}
			done := make(chan *directory.ProvisionTask, 1)
			go func() {
				task, err := e.svc.Reconcile(ctx, ent, provision.ReconcileOptions{DryRun: true})
				if err != nil {
					t.Error(err)
				}
				done <- task
			}()
			select {
			case <-done:
				t.Fatal("a reconcile ran while another process held the enterprise's push lock")
			case <-time.After(300 * time.Millisecond):
			}
			if tasks, _ := e.st.ListProvisionTasks(ctx, ent, 10); len(tasks) != 1 {
				t.Fatalf("%d tasks while the lock was held elsewhere, want only the dead one", len(tasks))
			}
			must(t, other.Release(ctx))
			var task *directory.ProvisionTask
			select {
			case task = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the reconcile never ran after the lock was released")
			}
			if task == nil || task.Status != directory.TaskSucceeded {
				t.Fatalf("reconcile = %+v", task)
			}
			got, err := e.st.GetProvisionTask(ctx, dead.ID)
			if err != nil || got.Status != directory.TaskFailed || !strings.HasPrefix(got.Reason, "interrupted:") || got.FinishedAt.IsZero() {
				t.Fatalf("the dead task = %+v, %v", got, err)
			}
			if _, err := st.Lock(ctx, "provision:"+ent, time.Second); err != nil {
				t.Fatalf("the reconcile kept the push lock: %v", err)
			}
		})
	}
}
