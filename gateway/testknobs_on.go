//go:build qiao_testknobs

package gateway

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Only in binaries built with -tags qiao_testknobs: QIAO_TESTKNOBS shortens the sync jobs' timing,
// e.g. "scheduler_tick=1s,sync_lease_ttl=4s,sync_lock_ttl=4s,cycle_unit=1s" (cycle_hours then
// counts seconds). A bad value stops the process: a test must not run on timing it did not ask for.
func init() {
	v := os.Getenv("QIAO_TESTKNOBS")
	if v == "" {
		return
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		d, err := time.ParseDuration(val)
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "QIAO_TESTKNOBS: %q is not a positive duration\n", kv)
			os.Exit(2)
		}
		switch k {
		case "scheduler_tick":
			jobTimes.SchedulerTick = d
		case "sync_lease_ttl":
			jobTimes.SyncLeaseTTL = d
		case "sync_lock_ttl":
			jobTimes.SyncLockTTL = d
		case "cycle_unit":
			jobTimes.CycleUnit = d
		default:
			fmt.Fprintf(os.Stderr, "QIAO_TESTKNOBS: unknown knob %q (scheduler_tick, sync_lease_ttl, sync_lock_ttl, cycle_unit)\n", k)
			os.Exit(2)
		}
	}
	testKnobs = v
}
