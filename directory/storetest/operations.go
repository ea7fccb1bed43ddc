package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

func testSyncTasksAndRecords(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	task := &directory.SyncTask{EnterpriseID: "acme", SourceID: "wecom", Trigger: directory.TriggerManual}
	if err := s.CreateSyncTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	var recs []*directory.SyncRecord
	for i := 0; i < 250; i++ {
		action := "create"
		if i%5 == 0 {
			action = "update"
		}
		recs = append(recs, &directory.SyncRecord{TaskID: task.ID, ObjectType: "user", UpstreamID: fmt.Sprintf("user%03d", i), Action: action,
			Upstream: json.RawMessage(`{"userid":"x"}`), LocalAfter: json.RawMessage(`{"name":"y"}`)})
	}
	if err := s.AddSyncRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	task.Status, task.Counts, task.ReadMode = directory.TaskSucceeded, map[string]int{"create": 200, "update": 50}, "list_id+get"
	if err := s.FinishSyncTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSyncTask(ctx, task.ID)
	if err != nil || got.Status != directory.TaskSucceeded || got.Counts["create"] != 200 || got.FinishedAt.IsZero() || got.ReadMode != "list_id+get" {
		t.Fatalf("task = %+v, %v", got, err)
	}
	all, after := 0, int64(0)
	for {
		page, err := s.ListSyncRecords(ctx, directory.RecordQuery{TaskID: task.ID, AfterID: after, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all += len(page)
		after = page[len(page)-1].ID
	}
	if all != 250 {
		t.Fatalf("paged %d records, want 250", all)
	}
	upd, _ := s.ListSyncRecords(ctx, directory.RecordQuery{TaskID: task.ID, Action: "update"})
	if len(upd) != 50 {
		t.Fatalf("update records = %d", len(upd))
	}
	one, _ := s.ListSyncRecords(ctx, directory.RecordQuery{TaskID: task.ID, UpstreamID: "user007"})
	if len(one) != 1 || string(one[0].Upstream) != `{"userid":"x"}` || one[0].LocalBefore != nil {
		t.Fatalf("record of one object = %+v", one)
	}
	if ts, _ := s.ListSyncTasks(ctx, "acme", "wecom", 10); len(ts) != 1 {
		t.Fatalf("ListSyncTasks = %d", len(ts))
	}
	if n, err := s.DeleteSyncTasksBefore(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("DeleteSyncTasksBefore = %d, %v", n, err)
	}
	if left, _ := s.ListSyncRecords(ctx, directory.RecordQuery{TaskID: task.ID}); len(left) != 0 {
		t.Fatalf("%d records outlived their task", len(left))
	}
}

func testAudit(t *testing.T, newStore NewStore) {
	s := newStore(t)
	for i, kind := range []string{"login.success", "login.failure", "source.update", "login.success"} {
		if err := s.AddAuditEvent(ctx, &directory.AuditEvent{EnterpriseID: "acme", Kind: kind, UserID: fmt.Sprintf("u%d", i%2), IP: "10.0.0.1",
			Outcome: "ok", Detail: json.RawMessage(`{"i":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := s.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme"})
	if len(all) != 4 || all[0].ID < all[3].ID {
		t.Fatalf("audit = %d events, want 4 newest first", len(all))
	}
	logins, _ := s.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme", Kind: "login."})
	if len(logins) != 3 {
		t.Fatalf("login.* = %d", len(logins))
	}
	ok, _ := s.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme", Kind: "login.success", UserID: "u0"})
	if len(ok) != 1 {
		t.Fatalf("login.success of u0 = %d", len(ok))
	}
	page, _ := s.ListAuditEvents(ctx, directory.AuditQuery{EnterpriseID: "acme", BeforeID: all[1].ID})
	if len(page) != 2 {
		t.Fatalf("page before %d = %d", all[1].ID, len(page))
	}

	// Counted per kind and hour from a start: events before it, of other kinds or of another
	// enterprise are not.
	since := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	for _, e := range []struct {
		ent, kind string
		at        time.Duration
	}{{"count", "login.success", -time.Minute}, {"count", "login.success", 0}, {"count", "login.success", 30 * time.Minute},
		{"count", "login.failure", 59 * time.Minute}, {"count", "login.success", 5*time.Hour + time.Second}, {"count", "login.success", 23 * time.Hour},
		{"count", "admin.source.update", time.Hour}, {"count-other", "login.success", time.Hour}} {
		if err := s.AddAuditEvent(ctx, &directory.AuditEvent{EnterpriseID: e.ent, Kind: e.kind, At: since.Add(e.at), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	counts, err := s.CountAuditEvents(ctx, "count", "login.", since, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []directory.AuditCount{{Kind: "login.failure", Bucket: 0, Count: 1}, {Kind: "login.success", Bucket: 0, Count: 2},
		{Kind: "login.success", Bucket: 5, Count: 1}, {Kind: "login.success", Bucket: 23, Count: 1}}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("CountAuditEvents = %v, want %v", counts, want)
	}
	if counts, err := s.CountAuditEvents(ctx, "count", "login.failure", since, 24*time.Hour); err != nil || fmt.Sprint(counts) != "[{login.failure 0 1}]" {
		t.Fatalf("CountAuditEvents(login.failure) = %v, %v", counts, err)
	}
	if counts, err := s.CountAuditEvents(ctx, "nobody", "login.", since, time.Hour); err != nil || len(counts) != 0 {
		t.Fatalf("CountAuditEvents of an enterprise without events = %v, %v", counts, err)
	}
}

func testEventInbox(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	if err := s.PutSource(ctx, source("acme", "wecom", directory.KindWeCom, true)); err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"k1", "k2", "k1", "k3"} {
		added, err := s.AddSourceEvent(ctx, &directory.SourceEvent{EnterpriseID: "acme", SourceID: "wecom", DedupeKey: key,
			EventType: "delete_user", Payload: json.RawMessage(`{"UserID":"u` + key + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if added != (i != 2) {
			t.Fatalf("event %d (%s): added = %v", i, key, added)
		}
	}
	now := time.Now()
	// Two replicas claim at once: every event goes to exactly one.
	var mu sync.Mutex
	got := map[int64]int{}
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs, err := s.ClaimSourceEvents(ctx, now, now.Add(time.Minute), 10)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, e := range evs {
				got[e.ID]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(got) != 3 {
		t.Fatalf("claimed %d distinct events, want 3", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("event %d claimed %d times", id, n)
		}
	}
	if again, _ := s.ClaimSourceEvents(ctx, now, now.Add(time.Minute), 10); len(again) != 0 {
		t.Fatalf("claimed events claimed again before their claim expired: %d", len(again))
	}
	// An expired claim (a replica died) is claimed again.
	later := now.Add(2 * time.Minute)
	evs, _ := s.ClaimSourceEvents(ctx, later, later.Add(time.Minute), 10)
	if len(evs) != 3 || evs[0].Attempts != 2 || evs[0].DedupeKey != "k1" {
		t.Fatalf("reclaim = %d events, attempts %d", len(evs), evs[0].Attempts)
	}
	evs[0].Status, evs[0].TaskID = directory.EventApplied, "task-1"
	if err := s.FinishSourceEvent(ctx, evs[0]); err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListSourceEvents(ctx, "acme", "wecom", 10)
	if len(list) != 3 || list[2].Status != directory.EventApplied || list[2].TaskID != "task-1" || string(list[2].Payload) != `{"UserID":"uk1"}` {
		t.Fatalf("events = %+v", list)
	}
	much := later.Add(time.Hour)
	if left, _ := s.ClaimSourceEvents(ctx, much, much.Add(time.Minute), 10); len(left) != 2 {
		t.Fatalf("an applied event is claimable: %d", len(left))
	}
	// A closed source's events wait in the inbox: not claimed until it is enabled again.
	src, _ := s.GetSource(ctx, "acme", "wecom")
	src.Enabled = false
	if err := s.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	end := much.Add(time.Hour)
	if got, _ := s.ClaimSourceEvents(ctx, end, end.Add(time.Minute), 10); len(got) != 0 {
		t.Fatalf("a closed source's events were claimed: %d", len(got))
	}
	src.Enabled = true
	if err := s.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ClaimSourceEvents(ctx, end, end.Add(time.Minute), 10); len(got) != 2 {
		t.Fatalf("after reopening, %d events claimable, want the 2 kept", len(got))
	}
}

func testTransactionRollsBack(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx directory.Store) error {
		if err := tx.CreateUser(ctx, &directory.User{EnterpriseID: "acme", Username: "ghost"}); err != nil {
			return err
		}
		if _, err := tx.GetUserByUsername(ctx, "acme", "ghost"); err != nil {
			return fmt.Errorf("read own write in tx: %w", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if _, err := s.GetUserByUsername(ctx, "acme", "ghost"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("rolled-back user visible: %v", err)
	}
	err = s.InTx(ctx, func(tx directory.Store) error {
		return tx.CreateUser(ctx, &directory.User{EnterpriseID: "acme", Username: "kept"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUserByUsername(ctx, "acme", "kept"); err != nil {
		t.Fatalf("committed user missing: %v", err)
	}
}

func testAccessJobs(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	for _, obj := range []string{"wecom", "web"} {
		j := &directory.AccessJob{EnterpriseID: "acme", Kind: directory.JobSourceClosed, Object: obj, Actor: "config", Reason: "closed",
			Payload: json.RawMessage(`{"users":["u1"]}`)}
		if err := s.AddAccessJob(ctx, j); err != nil || j.ID == 0 {
			t.Fatalf("AddAccessJob = %d, %v", j.ID, err)
		}
	}
	now := time.Now()
	var mu sync.Mutex
	got := map[int64]int{}
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			js, err := s.ClaimAccessJobs(ctx, now, now.Add(time.Minute), 10)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, j := range js {
				got[j.ID]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(got) != 2 {
		t.Fatalf("claimed %d distinct jobs, want 2", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("job %d claimed %d times", id, n)
		}
	}
	later := now.Add(2 * time.Minute)
	js, _ := s.ClaimAccessJobs(ctx, later, later.Add(time.Minute), 10)
	if len(js) != 2 || js[0].Attempts != 2 || js[0].Object != "wecom" || string(js[0].Payload) != `{"users":["u1"]}` {
		t.Fatalf("reclaim = %+v", js)
	}
	js[0].Status, js[0].Result = directory.EventApplied, json.RawMessage(`{"sessions":3}`)
	if err := s.FinishAccessJob(ctx, js[0]); err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListAccessJobs(ctx, "acme", 10)
	if len(list) != 2 || list[1].Status != directory.EventApplied || string(list[1].Result) != `{"sessions":3}` || list[1].FinishedAt.IsZero() {
		t.Fatalf("jobs = %+v", list)
	}
	much := later.Add(time.Hour)
	if left, _ := s.ClaimAccessJobs(ctx, much, much.Add(time.Minute), 10); len(left) != 1 {
		t.Fatalf("a finished job is claimable: %d left", len(left))
	}
}

// testInterruptedTasks: tasks a dead process left running are failed by kind (full syncs or
// events) and source, and nothing else changes.
func testInterruptedTasks(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	mk := func(src string, trig directory.Trigger, status directory.TaskStatus) *directory.SyncTask {
		task := &directory.SyncTask{EnterpriseID: "acme", SourceID: src, Trigger: trig, Status: status}
		if err := s.CreateSyncTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		return task
	}
	full := mk("wecom", directory.TriggerManual, directory.TaskRunning)
	event := mk("wecom", directory.TriggerEvent, directory.TaskRunning)
	done := mk("wecom", directory.TriggerSchedule, directory.TaskSucceeded)
	other := mk("dingtalk", directory.TriggerManual, directory.TaskRunning)
	at := time.Now().Truncate(time.Millisecond)
	status := func(task *directory.SyncTask) *directory.SyncTask {
		got, err := s.GetSyncTask(ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if n, err := s.InterruptSyncTasks(ctx, "acme", "wecom", false, at, "interrupted"); err != nil || n != 1 {
		t.Fatalf("full syncs interrupted: %d, %v; want 1", n, err)
	}
	if got := status(full); got.Status != directory.TaskFailed || got.Reason != "interrupted" || !got.FinishedAt.Equal(at) {
		t.Fatalf("the dead full sync: %+v", got)
	}
	for _, task := range []*directory.SyncTask{event, other} {
		if got := status(task); got.Status != directory.TaskRunning {
			t.Fatalf("task %s (%s of %s) became %s", task.ID, task.Trigger, task.SourceID, got.Status)
		}
	}
	if got := status(done); got.Status != directory.TaskSucceeded {
		t.Fatalf("a finished task became %s", got.Status)
	}
	if n, err := s.InterruptSyncTasks(ctx, "acme", "wecom", true, at, "interrupted"); err != nil || n != 1 || status(event).Status != directory.TaskFailed {
		t.Fatalf("events interrupted: %d, %v, event task %s", n, err, status(event).Status)
	}
	if n, err := s.InterruptSyncTasks(ctx, "acme", "wecom", false, at, "interrupted"); err != nil || n != 0 {
		t.Fatalf("again: %d, %v; want 0", n, err)
	}
}
