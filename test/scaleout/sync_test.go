package scaleout

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/test/scaleout/cluster"
)

// scheduledOncePerCycle: the three replicas' schedulers each look for due syncs every second, but
// under the scheduler's lease one cycle runs one task: the scheduled tasks of the whole run so far
// (PostgreSQL and Redis restarts, a rolling restart included) start at least a cycle apart, so N
// cycles made at most N tasks, not 3N.
func scheduledOncePerCycle(t *testing.T, db *sql.DB) {
	var starts []int64 // ms
	rows, err := db.Query(`SELECT started_at FROM sync_tasks WHERE trigger_ = 'schedule' ORDER BY started_at`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		starts = append(starts, s)
	}
	rows.Close()
	if len(starts) < 3 {
		t.Fatalf("%d scheduled tasks over the run, want several cycles' worth", len(starts))
	}
	span := time.Duration(starts[len(starts)-1]-starts[0]) * time.Millisecond
	for i := 1; i < len(starts); i++ {
		// A task is due when a cycle has passed since the last one started (times stored in ms).
		if gap := time.Duration(starts[i]-starts[i-1]) * time.Millisecond; gap < cycle-time.Millisecond {
			t.Fatalf("scheduled tasks %d and %d started %v apart, less than a cycle (%v): one cycle ran twice", i-1, i, gap, cycle)
		}
	}
	if max := int(span/cycle) + 1; len(starts) > max {
		t.Fatalf("%d scheduled tasks in %v, more than the %d cycles", len(starts), span, max)
	}
	t.Logf("%d scheduled tasks over %v (cycle %v), none within a cycle of another", len(starts), span.Round(time.Millisecond), cycle)
}

// bulk is how many people join upstream at once for the killed sync: enough that its apply (one
// transaction) lasts long enough to be caught in the middle.
const bulk = 4000

// killSyncHolder: people join upstream; the replica holding the scheduler's lease is SIGKILLed in
// the middle of the apply transaction. The directory is as before (the transaction rolled back,
// the task left no records), another replica takes the lease once it expires and completes the
// next cycle's run, and each new person was created exactly once.
func killSyncHolder(t *testing.T, c *cluster.Cluster, sim *wecomsim.Sim, db *sql.DB) {
	links := func() int {
		return cluster.Count(t, db, `SELECT count(*) FROM user_links WHERE source_id = 'wecom'`)
	}
	// Upstream reads fail while the people are added, so no run reads half of them.
	sim.Kit().AddFault(simkit.Fault{API: "*", ErrCode: 60011})
	time.Sleep(300 * time.Millisecond) // a read call already past the fault check ends
	cluster.Eventually(t, "no sync running", 30*time.Second, func() bool {
		return cluster.Count(t, db, `SELECT count(*) FROM sync_tasks WHERE trigger_ = 'schedule' AND status = 'running'`) == 0
	})
	before, depts := links(), cluster.Count(t, db, `SELECT count(*) FROM departments`)
	org := sim.Org()
	for i := range bulk {
		id := fmt.Sprintf("bulk-%04d", i)
		if _, err := org.PutUser(&simorg.User{UserID: id, Name: "新同事" + strconv.Itoa(i), Depts: []int{simorg.RootID}, Orders: []uint32{0},
			IsLeader: []int{0}, Status: simorg.StatusActive, Gender: "1", Mobile: fmt.Sprintf("139%08d", i)}, true); err != nil {
			t.Fatal(err)
		}
	}
	cleared := time.Now().UnixMilli()
	sim.Kit().ClearFaults()

	// The next cycle reads them and applies: a write transaction that runs on.
	var holder string
	cluster.Eventually(t, "a long apply transaction", 60*time.Second, func() bool {
		return cluster.Count(t, db, `SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
			AND xact_start < now() - interval '200 milliseconds'`) > 0
	})
	if err := db.QueryRow(`SELECT holder FROM leases WHERE name = 'sync-scheduler' AND expires_at <> 0`).Scan(&holder); err != nil {
		t.Fatalf("the scheduler's lease: %v", err)
	}
	var victim *cluster.Replica
	for _, r := range c.Replicas {
		if strings.Contains(holder, "/"+strconv.Itoa(r.Pid())+"/") {
			victim = r
		}
	}
	if victim == nil {
		t.Fatalf("no replica holds the scheduler's lease %q", holder)
	}
	c.Kill(victim)
	t.Logf("killed replica %s (the scheduler lease's holder) mid-apply", victim.Name)

	// The previous directory, intact: PostgreSQL rolled the transaction back with the connection.
	var killed, status string
	if err := db.QueryRow(`SELECT id, status FROM sync_tasks WHERE trigger_ = 'schedule' AND started_at >= $1 ORDER BY started_at LIMIT 1`, cleared).Scan(&killed, &status); err != nil {
		t.Fatalf("the killed task: %v", err)
	}
	cluster.Eventually(t, "the killed apply's transaction gone", 30*time.Second, func() bool {
		return cluster.Count(t, db, `SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
			AND xact_start < now() - interval '200 milliseconds'`) == 0 || links() != before
	})
	if n := links(); n != before {
		t.Fatalf("%d people linked after the kill, %d before: the killed apply committed (in part or whole); task %s is %s", n, before, killed, status)
	}
	if n := cluster.Count(t, db, `SELECT count(*) FROM departments`); n != depts {
		t.Fatalf("%d departments after the kill, %d before", n, depts)
	}
	if n := cluster.Count(t, db, `SELECT count(*) FROM sync_records WHERE task_id = $1`, killed); n != 0 || status != "running" {
		t.Fatalf("the killed task %s is %s with %d records, want running (it never finished) with none", killed, status, n)
	}

	// Another replica takes the lease once it expires and completes the next cycle.
	cluster.Eventually(t, "the next run completed by another replica", 90*time.Second, func() bool {
		return cluster.Count(t, db, `SELECT count(*) FROM sync_tasks WHERE trigger_ = 'schedule' AND status = 'succeeded' AND started_at >
			(SELECT started_at FROM sync_tasks WHERE id = $1)`, killed) > 0
	})
	// The replica that took the source's lock marked the dead task, so no page shows it running for ever.
	var reason string
	if err := db.QueryRow(`SELECT status, reason FROM sync_tasks WHERE id = $1`, killed).Scan(&status, &reason); err != nil || status != "failed" || !strings.HasPrefix(reason, "interrupted:") {
		t.Fatalf("the killed task after the next run: %s %q %v; want failed, interrupted", status, reason, err)
	}
	if err := db.QueryRow(`SELECT holder FROM leases WHERE name = 'sync-scheduler'`).Scan(&holder); err == nil && strings.Contains(holder, "/"+strconv.Itoa(victim.Pid())+"/") {
		t.Fatalf("the killed replica still holds the lease: %s", holder)
	}
	if n := links(); n != before+bulk {
		t.Fatalf("%d people linked after the next run, want %d + %d", n, before, bulk)
	}
	// Nothing applied twice: each new person has one create record, over every task.
	var creates, distinct int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT upstream_id) FROM sync_records WHERE object_type = 'user' AND action = 'create'
		AND upstream_id LIKE 'bulk-%'`).Scan(&creates, &distinct); err != nil {
		t.Fatal(err)
	}
	if creates != bulk || distinct != bulk {
		t.Fatalf("%d create records for %d distinct new people, want %d each", creates, distinct, bulk)
	}
	if n := cluster.Count(t, db, `SELECT count(*) FROM users WHERE username LIKE 'bulk-%'`); n != bulk {
		t.Fatalf("%d users for %d new people", n, bulk)
	}
	// The killed replica comes back and serves.
	c.Start(victim)
}
