package dirsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/connectors"
	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/simorg"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/secretbox"
	"github.com/qiao-gateway/qiao/internal/state"
)

type env struct {
	t       *testing.T
	ctx     context.Context
	store   *sqlstore.Store
	eng     *Engine
	wsim    *wecomsim.Sim
	wset    *wecomsim.Setup
	wURL    string
	dsim    *dingtalksim.Sim
	dset    *dingtalksim.Setup
	dURL    string
	mu      sync.Mutex
	revoked []string
	dsn     string
}

func openStore(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	box, _ := secretbox.New(bytes.Repeat([]byte{5}, 32))
	s, err := sqlstore.Open(context.Background(), dsn, box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newEnv(t *testing.T, users int) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background()}
	e.dsn = "sqlite://" + filepath.Join(t.TempDir(), "q.db")
	e.store = openStore(t, e.dsn)
	e.wset = wecomsim.NewSetup(users, 21, "127.0.0.1:8080")
	e.wsim = wecomsim.New(e.wset.Config)
	ws := httptest.NewServer(e.wsim)
	e.wURL = ws.URL
	e.dset = dingtalksim.NewSetup(users, 21, "127.0.0.1:8080")
	e.dsim = dingtalksim.New(e.dset.Config)
	ds := httptest.NewServer(e.dsim)
	e.dURL = ds.URL
	t.Cleanup(func() { ws.Close(); ds.Close(); e.wsim.Close(); e.dsim.Close() })
	st := state.NewMemory()
	t.Cleanup(func() { st.Close() })
	e.eng = &Engine{Store: e.store, State: st, Open: func(ctx context.Context, src *directory.IdentitySource) (federation.DirectoryReader, error) {
		return connectors.Reader(string(src.Kind), src.Config, src.Secrets)
	}, Revoke: func(ctx context.Context, ent, uid string) error {
		e.mu.Lock()
		e.revoked = append(e.revoked, uid)
		e.mu.Unlock()
		return nil
	}}
	if err := e.store.PutEnterprise(e.ctx, &directory.Enterprise{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	e.putSource("wecom", nil)
	e.putSource("dingtalk", nil)
	return e
}

func (e *env) putSource(kind string, mod func(*directory.IdentitySource)) *directory.IdentitySource {
	e.t.Helper()
	src := &directory.IdentitySource{EnterpriseID: "acme", ID: kind, Kind: directory.SourceKind(kind), Name: "源" + kind, Enabled: true,
		Sync: directory.DefaultSyncSettings()}
	if kind == "wecom" {
		src.Config = map[string]string{"corp_id": e.wset.CorpID, "agent_id": "1000002", "api_base_url": e.wURL}
		src.Secrets = map[string]string{"secret": e.wset.Secret, "contact_secret": e.wset.ContactSecret}
	} else {
		src.Config = map[string]string{"corp_id": e.dset.CorpID, "app_key": e.dset.AppKey, "oapi_base_url": e.dURL, "api_base_url": e.dURL}
		src.Secrets = map[string]string{"app_secret": e.dset.AppSecret}
	}
	if mod != nil {
		mod(src)
	}
	if err := e.store.PutSource(e.ctx, src); err != nil {
		e.t.Fatal(err)
	}
	return src
}

func (e *env) run(src string) *Result {
	e.t.Helper()
	res, err := e.eng.Run(e.ctx, "acme", src, Options{})
	if err != nil {
		e.t.Fatalf("sync %s: %v", src, err)
	}
	if res.Task.Status != directory.TaskSucceeded {
		e.t.Fatalf("sync %s: %s: %s", src, res.Task.Status, res.Task.Reason)
	}
	return res
}

func (e *env) user(username string) *directory.User {
	e.t.Helper()
	u, err := e.store.GetUserByUsername(e.ctx, "acme", username)
	if err != nil {
		e.t.Fatalf("user %s: %v", username, err)
	}
	return u
}

func (e *env) ctl(base, method, path, body string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		e.t.Fatalf("%s %s %s: %d", method, path, body, resp.StatusCode)
	}
}

func simCounts(o *simorg.Org, present func(*simorg.User) bool) (depts, users int) {
	o.RLock()
	defer o.RUnlock()
	for _, id := range o.UserIDs() {
		if present(o.User(id)) {
			users++
		}
	}
	return len(o.DeptIDs()), users
}

func TestFullSyncFromBothPlatformsAndNoChangeResync(t *testing.T) {
	e := newEnv(t, 300)
	res := e.run("wecom")
	wd, wu := simCounts(e.wsim.Org(), func(*simorg.User) bool { return true })
	c := res.Task.Counts
	if c["create"] != wd+wu || res.Plan.DeptDeletes != 0 || res.Task.ReadMode != "department/list+user/list" {
		t.Fatalf("WeCom first sync counts %v (want %d depts + %d users created), mode %q", c, wd, wu, res.Task.ReadMode)
	}
	zs := e.user("zhangsan")
	if zs.Name != "张三" || zs.Email != "zhangsan@example.com" || zs.Mobile != "13800000001" || zs.Status != directory.UserActive {
		t.Fatalf("zhangsan = %+v", zs)
	}
	// Statuses map: disabled, not activated and exited upstream users arrive in those states.
	statuses := map[directory.UserStatus]int{}
	all, _ := e.store.ListUsers(e.ctx, "acme", "", 0)
	for _, u := range all {
		statuses[u.Status]++
	}
	if statuses[directory.UserDisabled] == 0 || statuses[directory.UserInactive] == 0 || statuses[directory.UserDeparted] == 0 {
		t.Fatalf("statuses = %v", statuses)
	}
	recs, _ := e.store.ListSyncRecords(e.ctx, directory.RecordQuery{TaskID: res.Task.ID, UpstreamID: "zhangsan"})
	if len(recs) != 1 || recs[0].Action != "create" || !strings.Contains(string(recs[0].Upstream), `"userid":"zhangsan"`) ||
		!strings.Contains(string(recs[0].LocalAfter), zs.ID) || strings.Contains(string(recs[0].LocalAfter), "password") {
		t.Fatalf("zhangsan's record = %+v", recs)
	}

	// DingTalk: the same person links to the same local user (matched by userid).
	dres := e.run("dingtalk")
	dd, du := simCounts(e.dsim.Org(), func(u *simorg.User) bool { return u.Status == 1 || u.Status == 4 })
	if dres.Task.Counts["create"]+dres.Task.Counts["update"] != dd+du {
		t.Fatalf("DingTalk counts %v, want %d depts + %d users", dres.Task.Counts, dd, du)
	}
	links, _ := e.store.LinksOfUser(e.ctx, "acme", zs.ID)
	if len(links) != 2 {
		t.Fatalf("zhangsan has %d links, want wecom and dingtalk", len(links))
	}
	if e.user("zhangsan").ID != zs.ID {
		t.Fatal("zhangsan's stable ID changed")
	}

	// Re-syncing an unchanged upstream writes nothing.
	before, _ := e.store.ListUsers(e.ctx, "acme", "", 0)
	for _, src := range []string{"wecom", "dingtalk"} {
		again := e.run(src)
		if !again.Plan.Empty() || again.Task.Counts["unchanged"] == 0 {
			t.Fatalf("%s no-change re-sync planned %v", src, again.Task.Counts)
		}
		if recs, _ := e.store.ListSyncRecords(e.ctx, directory.RecordQuery{TaskID: again.Task.ID}); len(recs) != 0 {
			t.Fatalf("%s no-change re-sync wrote %d records", src, len(recs))
		}
	}
	after, _ := e.store.ListUsers(e.ctx, "acme", "", 0)
	for i := range before {
		if !before[i].UpdatedAt.Equal(after[i].UpdatedAt) {
			t.Fatalf("user %s rewritten by a no-change re-sync", before[i].Username)
		}
	}
}

func TestChangesDeparturesAndUseridChange(t *testing.T) {
	e := newEnv(t, 120)
	e.run("wecom")
	zs := e.user("zhangsan")
	w := e.wURL
	e.ctl(w, "POST", "/_sim/users", `{"userid":"zhangsan","name":"张三丰","position":"架构师"}`)
	e.ctl(w, "POST", "/_sim/users", `{"userid":"newbie","name":"新人","department":[2],"email":"newbie@example.com","status":1}`)
	e.ctl(w, "POST", "/_sim/departments", `{"name":"新团队","parentid":2}`)
	// Move someone; one leaves (exited); one is removed.
	o := e.wsim.Org()
	o.RLock()
	var mover, leaver, removed string
	for _, id := range o.UserIDs() {
		u := o.User(id)
		if id == "zhangsan" || u.Status != simorg.StatusActive || len(u.Depts) != 1 {
			continue
		}
		switch {
		case mover == "" && u.Depts[0] != 3:
			mover = id
		case leaver == "":
			leaver = id
		case removed == "":
			removed = id
		}
	}
	o.RUnlock()
	e.ctl(w, "POST", "/_sim/users", `{"userid":"`+mover+`","department":[3]}`)
	e.ctl(w, "POST", "/_sim/users", `{"userid":"`+leaver+`","status":5}`)
	e.ctl(w, "DELETE", "/_sim/users/"+removed, "")
	res := e.run("wecom")
	c := res.Task.Counts
	if c["create"] != 2 || c["update"] != 2 || c["move"] != 1 || c["delete"] != 1 {
		t.Fatalf("counts = %v (want create 2: newbie + 新团队, update 2: zhangsan + leaver, move 1, delete 1)", c)
	}
	if u := e.user("zhangsan"); u.Name != "张三丰" || u.ID != zs.ID {
		t.Fatalf("zhangsan after update = %+v", u)
	}
	if e.user(leaver).Status != directory.UserDeparted || e.user(removed).Status != directory.UserDeparted {
		t.Fatal("exited and removed users must be departed")
	}
	if _, err := e.store.GetUserLink(e.ctx, "acme", "wecom", removed); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("removed user's link kept: %v", err)
	}
	if l, _ := e.store.GetUserLink(e.ctx, "acme", "wecom", mover); !slices.Equal(l.Departments, []string{"3"}) {
		t.Fatalf("mover's departments = %v", l.Departments)
	}
	e.mu.Lock()
	revoked := slices.Clone(e.revoked)
	e.mu.Unlock()
	if !slices.Contains(revoked, e.user(leaver).ID) || !slices.Contains(revoked, e.user(removed).ID) {
		t.Fatalf("revocation hook not called for departures: %v", revoked)
	}
	// A userid change is a delete plus a create, as the platform documents.
	e.ctl(w, "POST", "/_sim/users/newbie/rename", `{"new_userid":"newbie2"}`)
	res = e.run("wecom")
	if res.Task.Counts["create"] != 1 || res.Task.Counts["delete"] != 1 {
		t.Fatalf("userid change counts = %v", res.Task.Counts)
	}
	old, nu := e.user("newbie"), e.user("newbie2")
	if old.Status != directory.UserDeparted || nu.Status != directory.UserActive || old.ID == nu.ID {
		t.Fatalf("old %+v new %+v", old, nu)
	}
	// Department delete.
	var teamID string
	deps, _ := e.store.ListDepartments(e.ctx, "acme", "wecom")
	for _, d := range deps {
		if d.Name == "新团队" {
			teamID = d.UpstreamID
		}
	}
	e.ctl(w, "DELETE", "/_sim/departments/"+teamID, "")
	if res := e.run("wecom"); res.Task.Counts["delete"] != 1 || res.Plan.DeptDeletes != 1 {
		t.Fatalf("department delete counts = %v", res.Task.Counts)
	}
}

func TestPartialScopeFieldMappingAndExtendedFields(t *testing.T) {
	e := newEnv(t, 200)
	e.putSource("wecom", func(s *directory.IdentitySource) {
		s.Sync.ScopeAll, s.Sync.ScopeDeptIDs = false, []string{"2"}
		s.Sync.FieldMappings = []directory.FieldMapping{{Upstream: "position", Local: "ext.title"}, {Upstream: "biz_mail", Local: "email"}}
		s.Sync.ExtendedFields = []string{"工号"}
	})
	e.run("wecom")
	o := e.wsim.Org()
	o.RLock()
	subtree := map[string]bool{}
	for _, id := range o.Subtree(2) {
		subtree[fmt.Sprint(id)] = true
	}
	o.RUnlock()
	deps, _ := e.store.ListDepartments(e.ctx, "acme", "wecom")
	if len(deps) != len(subtree) {
		t.Fatalf("synced %d departments, the subtree of 2 has %d", len(deps), len(subtree))
	}
	links, _ := e.store.ListUserLinks(e.ctx, "acme", "wecom")
	for _, l := range links {
		if len(l.Departments) == 0 {
			t.Fatalf("%s has no department in scope", l.UpstreamID)
		}
		for _, d := range l.Departments {
			if !subtree[d] {
				t.Fatalf("%s carries department %s outside the scope", l.UpstreamID, d)
			}
		}
	}
	zs := e.user("zhangsan")
	if zs.Attributes["title"] != "高级工程师" || zs.Attributes["工号"] != "E000001" || zs.Email != "zhangsan@corp.example.com" {
		t.Fatalf("mapped fields = %+v", zs)
	}
}

func TestIdentityMatching(t *testing.T) {
	e := newEnv(t, 60)
	pre := &directory.User{EnterpriseID: "acme", Username: "zhangsan", Name: "Zhang (local)", Status: directory.UserActive}
	if err := e.store.CreateUser(e.ctx, pre); err != nil {
		t.Fatal(err)
	}
	e.run("wecom")
	if got := e.user("zhangsan"); got.ID != pre.ID || got.Name != "张三" {
		t.Fatalf("upstream zhangsan did not link to the existing local user: %+v", got)
	}
	// Matching by email: two local users share the address → the upstream user is not linked.
	e2 := newEnv(t, 60)
	e2.putSource("dingtalk", func(s *directory.IdentitySource) { s.Sync.MatchBy = "email" })
	for _, name := range []string{"dup1", "dup2"} {
		if err := e2.store.CreateUser(e2.ctx, &directory.User{EnterpriseID: "acme", Username: name, Email: "zhangsan@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	res := e2.run("dingtalk")
	if res.Task.Counts["error"] != 1 {
		t.Fatalf("ambiguous match counts = %v", res.Task.Counts)
	}
	recs, _ := e2.store.ListSyncRecords(e2.ctx, directory.RecordQuery{TaskID: res.Task.ID, Action: "error"})
	if len(recs) != 1 || recs[0].UpstreamID != "zhangsan" || !strings.Contains(recs[0].Error, "ambiguous") {
		t.Fatalf("error records = %+v", recs)
	}
	if _, err := e2.store.GetUserLink(e2.ctx, "acme", "dingtalk", "zhangsan"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatal("an ambiguous match was linked")
	}
}

func TestDeletionProtection(t *testing.T) {
	e := newEnv(t, 200)
	e.run("wecom")
	o := e.wsim.Org()
	o.RLock()
	ids := slices.Clone(o.UserIDs())
	o.RUnlock()
	n := 0
	for _, id := range ids {
		if id != "zhangsan" && n < 31 {
			e.ctl(e.wURL, "DELETE", "/_sim/users/"+id, "")
			n++
		}
	}
	res, err := e.eng.Run(e.ctx, "acme", "wecom", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Task.Status != directory.TaskCancelled || !strings.Contains(res.Task.Reason, "31 users (threshold 30)") {
		t.Fatalf("task = %s: %s", res.Task.Status, res.Task.Reason)
	}
	departed := 0
	all, _ := e.store.ListUsers(e.ctx, "acme", "", 0)
	links, _ := e.store.ListUserLinks(e.ctx, "acme", "wecom")
	for _, u := range all {
		if u.Status == directory.UserDeparted {
			departed++
		}
	}
	_, wu := simCounts(o, func(*simorg.User) bool { return true })
	if len(links) != wu+31 {
		t.Fatalf("a cancelled task changed links: %d, want %d", len(links), wu+31)
	}
	if recs, _ := e.store.ListSyncRecords(e.ctx, directory.RecordQuery{TaskID: res.Task.ID}); len(recs) != 0 {
		t.Fatal("a cancelled task wrote records")
	}
	// Raising the threshold lets the same change through.
	e.putSource("wecom", func(s *directory.IdentitySource) { s.Sync.DeleteUsers = 40 })
	if res := e.run("wecom"); res.Task.Counts["delete"] != 31 {
		t.Fatalf("after raising the threshold: %v", res.Task.Counts)
	}
	_ = departed
}

func userCount(t *testing.T, s directory.Store) int {
	all, err := s.ListUsers(context.Background(), "acme", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(all)
}

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
		if c.ErrCode == 42001 {
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
	e.store = openStore(t, pgDatabase(t, base))
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

func pgDatabase(t *testing.T, base string) string {
	t.Helper()
	db, err := sqlOpen(base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := fmt.Sprintf("qiao_sync_%d", time.Now().UnixNano())
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db, _ := sqlOpen(base)
		db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		db.Close()
	})
	i := strings.LastIndex(base, "/")
	rest := ""
	if q := strings.Index(base[i:], "?"); q >= 0 {
		rest = base[i+q:]
	}
	return base[:i] + "/" + name + rest
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

func TestSchedule(t *testing.T) {
	e := newEnv(t, 30)
	e.putSource("dingtalk", func(s *directory.IdentitySource) { s.Enabled = false })
	e.putSource("wecom", func(s *directory.IdentitySource) { s.Sync.CycleHours = 6; s.Sync.VerifyAt = "03:30" })
	loc := time.FixedZone("CST", 8*3600)
	now := time.Date(2026, 11, 23, 1, 0, 0, 0, loc)
	e.eng.Now = func() time.Time { return now }
	tasks := func() []*directory.SyncTask {
		ts, _ := e.store.ListSyncTasks(e.ctx, "acme", "", 100)
		return ts
	}
	e.eng.Due(e.ctx, now) // 01:00: never synced → a scheduled task
	if ts := tasks(); len(ts) != 1 || ts[0].SourceID != "wecom" || ts[0].Trigger != directory.TriggerSchedule {
		t.Fatalf("01:00 tasks = %+v (a closed source must not run)", ts)
	}
	now = now.Add(2 * time.Hour) // 03:00: inside the cycle, before the verification time
	e.eng.Due(e.ctx, now)
	if n := len(tasks()); n != 1 {
		t.Fatalf("03:00: %d tasks, want still 1", n)
	}
	now = now.Add(31 * time.Minute) // 03:31: the daily verification
	e.eng.Due(e.ctx, now)
	if ts := tasks(); len(ts) != 2 || ts[0].Trigger != directory.TriggerVerify {
		t.Fatalf("03:31 tasks = %+v", ts)
	}
	now = now.Add(time.Hour) // 04:31: verification done today, cycle not over (last task 03:31)
	e.eng.Due(e.ctx, now)
	if n := len(tasks()); n != 2 {
		t.Fatalf("04:31: %d tasks, want 2", n)
	}
	now = now.Add(5 * time.Hour) // 09:31: 6 h after the last task
	e.eng.Due(e.ctx, now)
	if ts := tasks(); len(ts) != 3 || ts[0].Trigger != directory.TriggerSchedule {
		t.Fatalf("09:31 tasks = %+v", ts)
	}
	e.putSource("wecom", func(s *directory.IdentitySource) {
		s.Sync.Auto = false
		s.Sync.CycleHours = 6
		s.Sync.VerifyAt = "03:30"
	})
	now = now.Add(7 * time.Hour) // 16:31: automatic synchronization is off
	e.eng.Due(e.ctx, now)
	if n := len(tasks()); n != 3 {
		t.Fatalf("auto off: %d tasks, want 3", n)
	}
	now = now.Add(11 * time.Hour) // next day 03:31: the verification still runs
	e.eng.Due(e.ctx, now)
	if ts := tasks(); len(ts) != 4 || ts[0].Trigger != directory.TriggerVerify {
		t.Fatalf("next day's verification: %+v", ts[0])
	}
}

func TestEventForAUserGoneUpstreamIsARecordedNoOp(t *testing.T) {
	e := newEnv(t, 30)
	e.run("wecom")
	payload, _ := json.Marshal(federation.Event{Type: "update_user", UserIDs: []string{"never-existed"}, Key: "k"})
	se := &directory.SourceEvent{EnterpriseID: "acme", SourceID: "wecom", DedupeKey: "k", EventType: "update_user", Payload: payload}
	if _, err := e.store.AddSourceEvent(e.ctx, se); err != nil {
		t.Fatal(err)
	}
	before := userCount(t, e.store)
	if n := e.eng.DrainEvents(e.ctx); n != 1 {
		t.Fatalf("applied %d events", n)
	}
	evs, _ := e.store.ListSourceEvents(e.ctx, "acme", "wecom", 1)
	task, _ := e.store.GetSyncTask(e.ctx, evs[0].TaskID)
	if evs[0].Status != directory.EventApplied || task.Trigger != directory.TriggerEvent || task.Status != directory.TaskSucceeded || len(task.Counts) != 0 {
		t.Fatalf("event %+v, task %+v", evs[0], task)
	}
	if userCount(t, e.store) != before {
		t.Fatal("a no-op event changed the directory")
	}
	// A malformed payload fails the event (after its retries) without touching the directory.
	bad := &directory.SourceEvent{EnterpriseID: "acme", SourceID: "wecom", DedupeKey: "bad", EventType: "x", Payload: json.RawMessage(`{"user_ids": 5}`)}
	e.store.AddSourceEvent(e.ctx, bad)
	for i := 0; i < MaxEventAttempts+1; i++ {
		e.eng.DrainEvents(e.ctx)
	}
	evs, _ = e.store.ListSourceEvents(e.ctx, "acme", "wecom", 1)
	if evs[0].Status != directory.EventFailed || evs[0].Error == "" {
		t.Fatalf("malformed event = %+v", evs[0])
	}
}
