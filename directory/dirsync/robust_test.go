package dirsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/connectors"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/secretbox"
	"github.com/qiao-gateway/qiao/internal/state"
)

func TestReadFailureAppliesNothing(t *testing.T) {
	e := newEnv(t, 150)
	// user/list fails (a non-retryable errcode) on the 3rd department: nothing may be applied.
	body, _ := json.Marshal(map[string]any{"api": "user/list", "errcode": 60011, "count": 1})
	resp, _ := http.Post(e.wURL+"/_sim/faults", "application/json", bytes.NewReader(body))
	resp.Body.Close()
	res, err := e.eng.Run(e.ctx, "acme", "wecom", Options{})
	if err == nil || res.Task.Status != directory.TaskFailed || !strings.Contains(res.Task.Reason, "visibility scope") {
		t.Fatalf("task = %+v, %v", res.Task, err)
	}
	if n := userCount(t, e.store); n != 0 {
		t.Fatalf("a failed read applied %d users", n)
	}
	if deps, _ := e.store.ListDepartments(e.ctx, "acme", "wecom"); len(deps) != 0 {
		t.Fatal("a failed read applied departments")
	}
	// DingTalk: a failure in the middle of paging.
	body, _ = json.Marshal(map[string]any{"api": "v2/user/list", "errcode": 60011, "count": 1})
	resp, _ = http.Post(e.dURL+"/_sim/faults", "application/json", bytes.NewReader(body))
	resp.Body.Close()
	if res, err := e.eng.Run(e.ctx, "acme", "dingtalk", Options{}); err == nil || res.Task.Status != directory.TaskFailed {
		t.Fatalf("DingTalk read failure: %+v %v", res.Task, err)
	}
	if n := userCount(t, e.store); n != 0 {
		t.Fatalf("a failed DingTalk read applied %d users", n)
	}
}

func TestRateLimitStormAndTokenExpiry(t *testing.T) {
	e := newEnv(t, 100)
	for _, f := range []string{`{"api":"user/list","errcode":45009,"count":3}`, `{"api":"department/list","errcode":-1,"count":1}`} {
		resp, _ := http.Post(e.wURL+"/_sim/faults", "application/json", strings.NewReader(f))
		resp.Body.Close()
	}
	res := e.run("wecom")
	if res.Task.Counts["create"] == 0 {
		t.Fatal("nothing synced")
	}
	resp, _ := http.Post(e.dURL+"/_sim/faults", "application/json", strings.NewReader(`{"api":"v2/user/list","errcode":90018,"count":2}`))
	resp.Body.Close()
	e.run("dingtalk")

	// Tokens expire in the middle of a task: the connector refreshes once and carries on.
	e2 := newEnv(t, 100)
	open := e2.eng.Open
	e2.eng.Open = func(ctx context.Context, src *directory.IdentitySource) (federation.DirectoryReader, error) {
		r, err := open(ctx, src)
		return &expiring{DirectoryReader: r, expire: func() { e2.wsim.ExpireTokens(); e2.dsim.ExpireTokens() }}, err
	}
	e2.run("wecom")
	e2.run("dingtalk")
	expired := 0
	for _, c := range e2.wsim.Kit().Calls() {
		if c.ErrCode == 40014 { // what an expired token answers today
			expired++
		}
	}
	if expired == 0 {
		t.Fatal("the WeCom token never expired mid-task: the test did not test")
	}
}

// expiring expires the platform's tokens between reading departments and users.
type expiring struct {
	federation.DirectoryReader
	expire func()
}

func (x *expiring) Users(ctx context.Context, depts []federation.Dept, fn func(federation.User) error) error {
	x.expire()
	return x.DirectoryReader.Users(ctx, depts, fn)
}

// fakeReader serves a fixed snapshot, for malformed upstream data.
type fakeReader struct {
	depts []federation.Dept
	users []federation.User
}

func (f *fakeReader) Departments(context.Context, []string) ([]federation.Dept, error) {
	return f.depts, nil
}
func (f *fakeReader) Users(_ context.Context, _ []federation.Dept, fn func(federation.User) error) error {
	for _, u := range f.users {
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeReader) Info() federation.ReadInfo { return federation.ReadInfo{Mode: "fake"} }

func TestMalformedUpstream(t *testing.T) {
	e := newEnv(t, 10)
	fr := &fakeReader{}
	e.eng.Open = func(context.Context, *directory.IdentitySource) (federation.DirectoryReader, error) { return fr, nil }
	fr.depts = []federation.Dept{{ID: "1"}, {ID: "2", ParentID: "3"}, {ID: "3", ParentID: "2"}}
	if res, err := e.eng.Run(e.ctx, "acme", "wecom", Options{}); err == nil || !strings.Contains(res.Task.Reason, "cycle") {
		t.Fatalf("cycle: %v", err)
	}
	fr.depts = []federation.Dept{{ID: "1"}, {ID: "2", ParentID: "9"}}
	if _, err := e.eng.Run(e.ctx, "acme", "wecom", Options{}); err == nil || !strings.Contains(err.Error(), "not read") {
		t.Fatalf("missing parent: %v", err)
	}
	fr.depts = []federation.Dept{{ID: "1", Name: "Root"}}
	fr.users = []federation.User{
		{UserID: "ok1", Status: federation.StatusActive, Depts: []string{"1"}, Attrs: map[string]string{"userid": "ok1", "name": "甲"}},
		{UserID: "bad id!", Status: federation.StatusActive, Attrs: map[string]string{"userid": "bad id!"}},
		{UserID: "-dash", Status: federation.StatusActive, Attrs: map[string]string{"userid": "-dash"}},
		{UserID: "noname", Status: federation.StatusActive},
	}
	res, err := e.eng.Run(e.ctx, "acme", "wecom", Options{})
	if err != nil || res.Task.Counts["error"] != 2 || res.Task.Counts["create"] != 3 {
		t.Fatalf("bad userids: %v %v", res.Task.Counts, err)
	}
	if u := e.user("noname"); u.Name != "noname" {
		t.Fatalf("user without a name = %+v", u)
	}
}

func TestDryRunAndLock(t *testing.T) {
	e := newEnv(t, 50)
	res, err := e.eng.Run(e.ctx, "acme", "wecom", Options{DryRun: true})
	if err != nil || res.Task != nil || res.Plan.Counts()["create"] == 0 {
		t.Fatalf("dry run = %+v %v", res, err)
	}
	if userCount(t, e.store) != 0 {
		t.Fatal("a dry run wrote users")
	}
	if ts, _ := e.store.ListSyncTasks(e.ctx, "acme", "", 10); len(ts) != 0 {
		t.Fatal("a dry run recorded a task")
	}
	lease, err := e.eng.State.Lock(e.ctx, "sync:acme/wecom", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.Run(e.ctx, "acme", "wecom", Options{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second task of a source: %v", err)
	}
	lease.Release(e.ctx)
	e.run("wecom")
}

func TestPostgresFullSync(t *testing.T) {
	base := os.Getenv("QIAO_TEST_POSTGRES")
	if base == "" {
		t.Skip("QIAO_TEST_POSTGRES not set: PostgreSQL sync test skipped")
	}
	e := newEnv(t, 200)
	e.store = openStore(t, pgtemp.New(t, base, "qiao_sync"))
	e.eng.Store = e.store
	e.store.PutEnterprise(e.ctx, &directory.Enterprise{ID: "acme"})
	e.putSource("wecom", nil)
	e.putSource("dingtalk", nil)
	e.run("wecom")
	e.run("dingtalk")
	if again := e.run("wecom"); !again.Plan.Empty() {
		t.Fatalf("no-change re-sync on PostgreSQL planned %v", again.Task.Counts)
	}
	links, _ := e.store.LinksOfUser(e.ctx, "acme", e.user("zhangsan").ID)
	if len(links) != 2 {
		t.Fatalf("zhangsan links = %d", len(links))
	}
}

// TestKilledMidApply: a process killed in the middle of applying a large plan leaves the previous
// directory intact (the apply is one transaction).
func TestKilledMidApply(t *testing.T) {
	if os.Getenv("QIAO_SYNC_CHILD") == "1" {
		childApply()
		return
	}
	e := newEnv(t, 2000)
	e.run("wecom")
	before := userCount(t, e.store)
	// Rename everyone: the next plan touches every user.
	o := e.wsim.Org()
	o.RLock()
	ids := slices.Clone(o.UserIDs())
	o.RUnlock()
	for _, id := range ids {
		u := o.User(id).Clone()
		u.Name += "改"
		if _, err := o.PutUser(u, false); err != nil {
			t.Fatal(err)
		}
	}
	signal := filepath.Join(t.TempDir(), "mid-apply")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledMidApply$")
	cmd.Env = append(os.Environ(), "QIAO_SYNC_CHILD=1", "QIAO_SYNC_DSN="+e.dsn, "QIAO_SYNC_SIGNAL="+signal)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(signal); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("child never reached the middle of the apply: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup, no rollback call
		t.Fatal(err)
	}
	_ = cmd.Wait()
	s := openStore(t, e.dsn)
	if n := userCount(t, s); n != before {
		t.Fatalf("after the kill: %d users, want the previous %d", n, before)
	}
	all, _ := s.ListUsers(context.Background(), "acme", "", 0)
	for _, u := range all {
		if strings.HasSuffix(u.Name, "改") {
			t.Fatalf("half-applied change visible after the kill: %s", u.Name)
		}
	}
	// The interrupted task shows as running (its process died); the next task applies cleanly.
	e.store = s
	e.eng.Store = s
	res := e.run("wecom")
	if res.Task.Counts["update"] != before {
		t.Fatalf("re-run after the kill: %v", res.Task.Counts)
	}
}

func childApply() {
	ctx := context.Background()
	box, _ := secretbox.New(bytes.Repeat([]byte{5}, 32))
	s, err := sqlstore.Open(ctx, os.Getenv("QIAO_SYNC_DSN"), box)
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(3)
	}
	eng := &Engine{Store: s, State: state.NewMemory(), Open: func(ctx context.Context, src *directory.IdentitySource) (federation.DirectoryReader, error) {
		return connectors.Reader(string(src.Kind), src.Config, src.Secrets)
	}}
	eng.midApply = func() error {
		_ = os.WriteFile(os.Getenv("QIAO_SYNC_SIGNAL"), []byte("x"), 0o600)
		time.Sleep(time.Hour) // killed here, inside the transaction
		return nil
	}
	_, err = eng.Run(ctx, "acme", "wecom", Options{})
	fmt.Println("child: run returned", err)
	os.Exit(4)
}

// TestTasksOfADeadProcessAreMarkedInterrupted: a full sync and an event task left "running" by a
// process that died (SIGKILL) are failed with the reason when the next full sync, respectively
// event, of the source takes the lock they ran under; a running task of another kind is not.
func TestTasksOfADeadProcessAreMarkedInterrupted(t *testing.T) {
	e := newEnv(t, 10)
	dead := func(trig directory.Trigger) *directory.SyncTask {
		task := &directory.SyncTask{EnterpriseID: "acme", SourceID: "wecom", Trigger: trig, Status: directory.TaskRunning, StartedAt: time.Now()}
		if err := e.store.CreateSyncTask(e.ctx, task); err != nil {
			t.Fatal(err)
		}
		return task
	}
	status := func(task *directory.SyncTask) *directory.SyncTask {
		got, err := e.store.GetSyncTask(e.ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	deadSync, deadEvent := dead(directory.TriggerSchedule), dead(directory.TriggerEvent)
	e.run("wecom")
	if got := status(deadSync); got.Status != directory.TaskFailed || !strings.HasPrefix(got.Reason, "interrupted:") || got.FinishedAt.IsZero() {
		t.Fatalf("the dead full sync after the next one: %+v", got)
	}
	if got := status(deadEvent); got.Status != directory.TaskRunning {
		t.Fatalf("a full sync touched an event task: %+v", got)
	}
	payload, _ := json.Marshal(federation.Event{Type: "update_user", UserIDs: []string{"never-existed"}, Key: "k"})
	if _, err := e.store.AddSourceEvent(e.ctx, &directory.SourceEvent{EnterpriseID: "acme", SourceID: "wecom", DedupeKey: "k", EventType: "update_user", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if n := e.eng.DrainEvents(e.ctx); n != 1 {
		t.Fatalf("applied %d events", n)
	}
	if got := status(deadEvent); got.Status != directory.TaskFailed || !strings.HasPrefix(got.Reason, "interrupted:") {
		t.Fatalf("the dead event task after the next event: %+v", got)
	}
}
