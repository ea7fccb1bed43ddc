package dirsync

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
)

// countingStore counts the full loads of a source's users.
type countingStore struct {
	directory.Store
	sourceUsers, getUser atomic.Int64
}

func (c *countingStore) SourceUsers(ctx context.Context, ent, src string) ([]directory.LinkedUser, error) {
	c.sourceUsers.Add(1)
	return c.Store.SourceUsers(ctx, ent, src)
}

func (c *countingStore) GetUser(ctx context.Context, ent, id string) (*directory.User, error) {
	c.getUser.Add(1)
	return c.Store.GetUser(ctx, ent, id)
}

// A no-change full sync finds every person unchanged by the fingerprint the last apply wrote,
// without loading them; a person changed locally since (their updated_at moved), or upstream, or
// under a changed field mapping, is loaded and compared as before.
func TestFingerprintSkipsOnlyWhatNobodyChanged(t *testing.T) {
	e := newEnv(t, 80)
	first := e.run("wecom")
	// The upstream records were staged in the store during the read: the link and the record
	// have them, and the staging is empty again.
	l, err := e.store.GetUserLink(e.ctx, "acme", "wecom", "zhangsan")
	if err != nil || !strings.Contains(string(l.Upstream), `"userid":"zhangsan"`) {
		t.Fatalf("zhangsan's link: %v, upstream %s", err, l.Upstream)
	}
	recs, err := e.store.ListSyncRecords(e.ctx, directory.RecordQuery{TaskID: first.Task.ID, UpstreamID: "zhangsan"})
	if err != nil || len(recs) != 1 || !strings.Contains(string(recs[0].Upstream), `"userid":"zhangsan"`) {
		t.Fatalf("zhangsan's record: %v, %+v", err, recs)
	}
	var staged int
	if err := e.store.DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM sync_staging`).Scan(&staged); err != nil || staged != 0 {
		t.Fatalf("%d records left staged (%v)", staged, err)
	}
	cs := &countingStore{Store: e.store}
	e.eng.Store = cs

	again := e.run("wecom")
	if !again.Plan.Empty() || again.Task.Counts[ActUnchanged] != first.Task.Counts[ActCreate] {
		t.Fatalf("no-change sync: counts %v after %v", again.Task.Counts, first.Task.Counts)
	}
	if n := cs.sourceUsers.Load() + cs.getUser.Load(); n != 0 {
		t.Fatalf("the no-change sync loaded users %d times; the fingerprints should have sufficed", n)
	}

	// A local change the upstream did not make: the fingerprint still matches the upstream, but
	// the user row moved, so the sync compares and puts the upstream's name back.
	zs := e.user("zhangsan")
	upstreamName := zs.Name
	zs.Name = "changed locally"
	if err := e.store.UpdateUser(e.ctx, zs); err != nil {
		t.Fatal(err)
	}
	res := e.run("wecom")
	if res.Task.Counts[ActUpdate] != 1 || len(res.Plan.Users) != 1 || res.Plan.Users[0].UpstreamID != "zhangsan" {
		t.Fatalf("after a local rename: counts %v", res.Task.Counts)
	}
	if got := e.user("zhangsan").Name; got != upstreamName {
		t.Fatalf("the sync left the local rename: %q, want %q", got, upstreamName)
	}
	if n := cs.getUser.Load(); n != 1 || cs.sourceUsers.Load() != 0 {
		t.Fatalf("a one-person change loaded %d users one by one and the source %d times; want 1 and 0", n, cs.sourceUsers.Load())
	}

	// An upstream change.
	e.ctl(e.wURL, "POST", "/_sim/users", `{"userid":"zhangsan","name":"张三丰"}`)
	if res := e.run("wecom"); res.Task.Counts[ActUpdate] != 1 || e.user("zhangsan").Name != "张三丰" {
		t.Fatalf("after an upstream rename: counts %v, name %q", res.Task.Counts, e.user("zhangsan").Name)
	}

	// A new field mapping changes what every person maps to: all are compared again (and the
	// mapped attribute written), then the next sync is a no-change one again.
	e.putSource("wecom", func(s *directory.IdentitySource) {
		s.Sync.FieldMappings = []directory.FieldMapping{{Local: "ext.title", Upstream: "position"}}
	})
	before := cs.sourceUsers.Load() + cs.getUser.Load()
	res = e.run("wecom")
	if cs.sourceUsers.Load()+cs.getUser.Load() == before {
		t.Fatalf("a changed field mapping compared nobody: counts %v", res.Task.Counts)
	}
	if again := e.run("wecom"); !again.Plan.Empty() {
		t.Fatalf("the sync after the mapping change: counts %v", again.Task.Counts)
	}
}

// A person found unchanged while the users were read, but changed locally before the plan (an
// event, an admin): their record waited in the spool, not in memory, and the plan compares them
// and writes the record and the link with the upstream data read back from there.
func TestUnchangedAtReadChangedAtPlan(t *testing.T) {
	e := newEnv(t, 40)
	e.run("wecom")
	upstreamName := e.user("zhangsan").Name
	changed := false
	res, err := e.eng.Run(e.ctx, "acme", "wecom", Options{Progress: func(p Progress) {
		if p.Phase != "plan" || changed {
			return
		}
		changed = true
		zs := e.user("zhangsan")
		zs.Name = "changed during the read"
		if err := e.store.UpdateUser(e.ctx, zs); err != nil {
			t.Error(err)
		}
	}})
	if err != nil || res.Task.Status != directory.TaskSucceeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	if !changed || res.Task.Counts[ActUpdate] != 1 || e.user("zhangsan").Name != upstreamName {
		t.Fatalf("counts %v, name %q; want one update putting back %q", res.Task.Counts, e.user("zhangsan").Name, upstreamName)
	}
	recs, err := e.store.ListSyncRecords(e.ctx, directory.RecordQuery{TaskID: res.Task.ID, UpstreamID: "zhangsan"})
	if err != nil || len(recs) != 1 || !strings.Contains(string(recs[0].Upstream), `"userid":"zhangsan"`) {
		t.Fatalf("zhangsan's record: %v, %+v", err, recs)
	}
	l, err := e.store.GetUserLink(e.ctx, "acme", "wecom", "zhangsan")
	if err != nil || !strings.Contains(string(l.Upstream), `"userid":"zhangsan"`) {
		t.Fatalf("zhangsan's link: %v, upstream %s", err, l.Upstream)
	}
}
