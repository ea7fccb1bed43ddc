package dirsync

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/simorg"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
)

// An event does not wait for a full sync of its source that is still reading: a departure that
// arrives while the sync runs is applied, and the person's access ended, at once. The full sync's
// older snapshot then neither brings back a person an event removed — whether the event came
// before the sync planned or between its plan and its apply — nor removes a person an event
// created; the next full sync agrees with upstream and changes nothing.
func TestEventDuringFullSyncIsAppliedAndNotUndone(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { eventDuringFullSync(t, newEnv(t, 60)) })
	t.Run("PostgreSQL", func(t *testing.T) {
		base := os.Getenv("QIAO_TEST_POSTGRES")
		if base == "" {
			t.Skip("QIAO_TEST_POSTGRES not set: PostgreSQL run skipped")
		}
		e := newEnv(t, 60)
		e.store = openStore(t, pgtemp.New(t, base, "qiao_sync"))
		e.eng.Store = e.store
		if err := e.store.PutEnterprise(e.ctx, &directory.Enterprise{ID: "acme"}); err != nil {
			t.Fatal(err)
		}
		e.putSource("wecom", nil)
		eventDuringFullSync(t, e)
	})
}

func eventDuringFullSync(t *testing.T, e *env) {
	e.run("wecom")
	w := e.wURL
	o := e.wsim.Org()
	o.RLock()
	var leaver, renamed string
	for _, id := range o.UserIDs() {
		u := o.User(id)
		if id == "zhangsan" || u.Status != simorg.StatusActive || len(u.Depts) != 1 {
			continue
		}
		switch {
		case leaver == "":
			leaver = id
		case renamed == "":
			renamed = id
		}
	}
	o.RUnlock()
	// Upstream renames one person before the sync reads: its plan will update them.
	e.ctl(w, "POST", "/_sim/users", `{"userid":"`+renamed+`","name":"改名了"}`)
	n := 0
	event := func(typ string, ids ...string) {
		t.Helper()
		n++
		key := typ + string(rune('a'+n))
		payload, _ := json.Marshal(federation.Event{Type: typ, UserIDs: ids, Key: key})
		if _, err := e.store.AddSourceEvent(e.ctx, &directory.SourceEvent{EnterpriseID: "acme", SourceID: "wecom", DedupeKey: key,
			EventType: typ, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	departedNow := func(step, username string) {
		t.Helper()
		u := e.user(username)
		if u.Status != directory.UserDeparted {
			t.Fatalf("%s: %s is %s, want departed", step, username, u.Status)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if !slices.Contains(e.revoked, u.ID) {
			t.Fatalf("%s: %s's access was not ended", step, username)
		}
	}
	plans := 0
	res, err := e.eng.Run(e.ctx, "acme", "wecom", Options{Progress: func(p Progress) {
		if p.Phase != "plan" {
			return
		}
		plans++
		switch plans {
		case 1: // the snapshot is read; the plan not made yet
			e.ctl(w, "DELETE", "/_sim/users/"+leaver, "")
			e.ctl(w, "POST", "/_sim/users", `{"userid":"newcomer","name":"新来的","department":[2],"email":"newcomer@example.com","status":1}`)
			event("delete_user", leaver)
			event("create_user", "newcomer")
			if got := e.eng.DrainEvents(e.ctx); got != 2 {
				t.Errorf("during the full sync's read %d events were applied, want 2 (they waited for the sync)", got)
			}
			departedNow("an event during the read", leaver)
			if u := e.user("newcomer"); u.Status != directory.UserActive {
				t.Errorf("newcomer is %s after its event", u.Status)
			}
		case 2: // the plan is made (it updates the renamed person); not applied yet
			e.ctl(w, "DELETE", "/_sim/users/"+renamed, "")
			event("delete_user", renamed)
			if got := e.eng.DrainEvents(e.ctx); got != 1 {
				t.Errorf("between the full sync's plan and apply %d events were applied, want 1", got)
			}
			departedNow("an event between plan and apply", renamed)
		}
	}})
	if err != nil || res.Task.Status != directory.TaskSucceeded {
		t.Fatalf("full sync: %v, %+v", err, res)
	}
	if plans != 2 {
		t.Fatalf("the plan phase was reported %d times, want 2", plans)
	}
	for _, name := range []string{leaver, renamed} {
		if u := e.user(name); u.Status != directory.UserDeparted {
			t.Fatalf("the full sync brought %s back: %s", name, u.Status)
		}
	}
	if u := e.user("newcomer"); u.Status != directory.UserActive {
		t.Fatalf("the full sync removed the person an event created: %s", u.Status)
	}
	if res.Task.Counts[ActSkip] != 3 {
		t.Fatalf("counts %v: want skip 3 (the changes left to the events)", res.Task.Counts)
	}
	if again := e.run("wecom"); !again.Plan.Empty() {
		t.Fatalf("the next full sync disagrees with what the events applied: %v", again.Task.Counts)
	}
}
