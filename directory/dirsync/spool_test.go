package dirsync

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
)

// The spool gives back every record as added, whether it is still in the buffer or in the file.
func TestSpoolReadsBackWhatWasAdded(t *testing.T) {
	sp, err := newSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	var users []*upUser
	want := map[*upUser]string{}
	for i := range 3000 { // about 3 MiB: three flushes, the rest in the buffer
		raw := fmt.Sprintf(`{"userid":"u%d","pad":"%s"}`, i, strings.Repeat("x", 1000+i%7))
		u := &upUser{UserID: fmt.Sprint("u", i), Raw: json.RawMessage(raw)}
		if err := sp.add(u); err != nil {
			t.Fatal(err)
		}
		if u.Raw != nil || u.spooled.n == 0 {
			t.Fatalf("u%d kept its record in memory", i)
		}
		users, want[u] = append(users, u), raw
	}
	check := func(when string) {
		for _, u := range users {
			got, err := sp.read(u.spooled)
			if err != nil || string(got) != want[u] {
				t.Fatalf("%s: %s read back %.40q (%v)", when, u.UserID, got, err)
			}
		}
	}
	check("before the last flush")
	if err := sp.flush(); err != nil {
		t.Fatal(err)
	}
	check("after it")
	if got, err := sp.read(spoolRef{}); got != nil || err != nil {
		t.Fatalf("no record: %q %v", got, err)
	}
}

// On PostgreSQL, where the store does not stage, a full sync spools its upstream records and the
// apply still writes each into the person's link and the task's record; nothing is staged.
func TestPostgresFullSyncWritesSpooledRecords(t *testing.T) {
	base := os.Getenv("QIAO_TEST_POSTGRES")
	if base == "" {
		t.Skip("QIAO_TEST_POSTGRES not set: PostgreSQL sync test skipped")
	}
	e := newEnv(t, 50)
	e.store = openStore(t, pgtemp.New(t, base, "qiao_sync"))
	e.eng.Store = e.store
	e.store.PutEnterprise(e.ctx, &directory.Enterprise{ID: "acme"})
	e.putSource("wecom", nil)
	if e.store.StagingPays() {
		t.Fatal("PostgreSQL stages: this test is for the spool")
	}
	first := e.run("wecom")
	upstreamOf := func(task string, name string) {
		t.Helper()
		l, err := e.store.GetUserLink(e.ctx, "acme", "wecom", "zhangsan")
		if err != nil || !strings.Contains(string(l.Upstream), `"userid":"zhangsan"`) || !strings.Contains(string(l.Upstream), name) {
			t.Fatalf("zhangsan's link: %v, upstream %s", err, l.Upstream)
		}
		recs, err := e.store.ListSyncRecords(e.ctx, directory.RecordQuery{TaskID: task, UpstreamID: "zhangsan"})
		if err != nil || len(recs) != 1 || !strings.Contains(string(recs[0].Upstream), name) {
			t.Fatalf("zhangsan's record: %v, %+v", err, recs)
		}
	}
	upstreamOf(first.Task.ID, `"userid":"zhangsan"`)
	all, err := e.store.ListSyncRecords(e.ctx, directory.RecordQuery{TaskID: first.Task.ID, ObjectType: "user"})
	if err != nil || len(all) != first.Task.Counts[ActCreate]-countDepts(t, e) {
		t.Fatalf("user records: %d (%v), counts %v", len(all), err, first.Task.Counts)
	}
	for _, r := range all {
		if !strings.Contains(string(r.Upstream), `"userid":"`+r.UpstreamID+`"`) {
			t.Fatalf("%s's record carries %s", r.UpstreamID, r.Upstream)
		}
	}
	// An upstream change goes through the spool too.
	e.ctl(e.wURL, "POST", "/_sim/users", `{"userid":"zhangsan","name":"张三丰"}`)
	res := e.run("wecom")
	if res.Task.Counts[ActUpdate] != 1 {
		t.Fatalf("after an upstream rename: %v", res.Task.Counts)
	}
	upstreamOf(res.Task.ID, "张三丰")
	var staged int
	if err := e.store.DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM sync_staging`).Scan(&staged); err != nil || staged != 0 {
		t.Fatalf("%d records staged (%v)", staged, err)
	}
}

func countDepts(t *testing.T, e *env) int {
	t.Helper()
	depts, err := e.store.ListDepartments(e.ctx, "acme", "wecom")
	if err != nil {
		t.Fatal(err)
	}
	return len(depts)
}
