package dirsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	left    []string // "source/user" of users who left a source but stay through another
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
	}, Access: (*recordAccess)(e)}
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

// recordAccess records what the engine tells Access.
type recordAccess env

func (r *recordAccess) UserDeparted(_ context.Context, _, uid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked = append(r.revoked, uid)
	return nil
}

func (r *recordAccess) UserLeftSource(_ context.Context, _, uid, src string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.left = append(r.left, src+"/"+uid)
	return nil
}

// A person removed from one source while another still links them stays active, and Access hears
// that they left that source (what it granted ends), not that they departed.
func TestLeavingOneSourceEndsOnlyWhatItGranted(t *testing.T) {
	e := newEnv(t, 40)
	no := false
	e.putSource("wecom", func(s *directory.IdentitySource) { s.Authoritative = &no })
	e.run("wecom")
	e.run("dingtalk")
	zs := e.user("zhangsan")
	if links, _ := e.store.LinksOfUser(e.ctx, "acme", zs.ID); len(links) != 2 {
		t.Fatalf("zhangsan has %d links, want wecom and dingtalk", len(links))
	}
	e.ctl(e.wURL, "DELETE", "/_sim/users/zhangsan", "")
	e.run("wecom")
	if u := e.user("zhangsan"); u.Status != directory.UserActive {
		t.Fatalf("zhangsan is %s after leaving WeCom only", u.Status)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.Contains(e.left, "wecom/"+zs.ID) {
		t.Fatalf("Access was not told that zhangsan left wecom: left %v", e.left)
	}
	if slices.Contains(e.revoked, zs.ID) {
		t.Fatal("zhangsan was revoked everywhere though DingTalk still links him")
	}
}

// Leaving an authoritative source (WeCom's default) is leaving the enterprise: the person departs
// though DingTalk still links them, DingTalk's syncs keep them departed, and only WeCom linking
// them again brings them back.
func TestLeavingAnAuthoritativeSourceIsDeparting(t *testing.T) {
	e := newEnv(t, 40)
	e.run("wecom")
	e.run("dingtalk")
	zs := e.user("zhangsan")
	e.ctl(e.wURL, "DELETE", "/_sim/users/zhangsan", "")
	e.run("wecom")
	u := e.user("zhangsan")
	if u.Status != directory.UserDeparted || u.DepartedBy != "wecom" {
		t.Fatalf("after leaving authoritative WeCom: status %s, departed by %q", u.Status, u.DepartedBy)
	}
	if links, _ := e.store.LinksOfUser(e.ctx, "acme", zs.ID); len(links) != 1 || links[0].SourceID != "dingtalk" {
		t.Fatalf("the DingTalk link should stay for the record: %+v", links)
	}
	e.mu.Lock()
	revoked := slices.Contains(e.revoked, zs.ID)
	e.mu.Unlock()
	if !revoked {
		t.Fatal("Access was not told zhangsan departed")
	}
	// DingTalk still lists him as active: its sync does not bring him back.
	e.run("dingtalk")
	if u := e.user("zhangsan"); u.Status != directory.UserDeparted {
		t.Fatalf("a DingTalk sync made zhangsan %s", u.Status)
	}
	// Rehired in WeCom: WeCom links him again and his status is WeCom's again (a new member is
	// inactive until they activate WeCom).
	e.ctl(e.wURL, "POST", "/_sim/users", `{"userid":"zhangsan","name":"张三","department":[2],"mobile":"13700000001"}`)
	e.run("wecom")
	if u := e.user("zhangsan"); u.Status != directory.UserInactive || u.DepartedBy != "" {
		t.Fatalf("rehired in WeCom: status %s, departed by %q", u.Status, u.DepartedBy)
	}
}

// A field the upstream does not return (WeCom withholds mobile and email from apps created after
// 2022-06-20: the keys are absent) keeps what qiao knows — a consented login's, say; a field it
// returns empty clears it.
func TestWithheldFieldsKeepTheLocalValue(t *testing.T) {
	e := &env{t: t, ctx: context.Background()}
	e.store = openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "q.db"))
	e.wset = wecomsim.NewSetup(20, 21, "127.0.0.1:8080")
	e.wset.Config.Apps[0].Post2022 = true
	e.wsim = wecomsim.New(e.wset.Config)
	ws := httptest.NewServer(e.wsim)
	e.wURL = ws.URL
	e.dset = dingtalksim.NewSetup(1, 21, "127.0.0.1:8080")
	t.Cleanup(func() { ws.Close(); e.wsim.Close() })
	st := state.NewMemory()
	t.Cleanup(func() { st.Close() })
	e.eng = &Engine{Store: e.store, State: st, Open: func(ctx context.Context, src *directory.IdentitySource) (federation.DirectoryReader, error) {
		return connectors.Reader(string(src.Kind), src.Config, src.Secrets)
	}, Access: (*recordAccess)(e)}
	if err := e.store.PutEnterprise(e.ctx, &directory.Enterprise{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	// The app secret only: user/list withholds mobile and email.
	e.putSource("wecom", func(s *directory.IdentitySource) { delete(s.Secrets, "contact_secret") })
	e.run("wecom")
	zs := e.user("zhangsan")
	if zs.Email != "" || zs.Mobile != "" {
		t.Fatalf("withheld fields arrived: %q %q", zs.Email, zs.Mobile)
	}
	zs.Email, zs.Mobile = "zhangsan@consented.example", "13900000000" // as a consented login keeps them
	if err := e.store.UpdateUser(e.ctx, zs); err != nil {
		t.Fatal(err)
	}
	e.run("wecom")
	if u := e.user("zhangsan"); u.Email != "zhangsan@consented.example" || u.Mobile != "13900000000" {
		t.Fatalf("a sync that was not given mobile and email erased them: %q %q", u.Email, u.Mobile)
	}
	// With the contact-sync secret the fields are returned; one WeCom has empty clears the local value.
	e.putSource("wecom", nil)
	o := e.wsim.Org()
	o.RLock()
	cur := *o.User("zhangsan")
	o.RUnlock()
	cur.Email = ""
	if _, err := o.PutUser(&cur, false); err != nil {
		t.Fatal(err)
	}
	e.run("wecom")
	if u := e.user("zhangsan"); u.Email != "" || u.Mobile == "13900000000" {
		t.Fatalf("fields WeCom returned did not win: %q %q", u.Email, u.Mobile)
	}
}
