package gateway

import "time"

// jobTiming is the timing of the background sync jobs.
type jobTiming struct {
	SchedulerTick time.Duration // how often the sync scheduler looks for due tasks
	SyncLeaseTTL  time.Duration // the scheduler's lease: a replica killed mid-run hands it on after this
	SyncLockTTL   time.Duration // a source's sync and apply locks in the state store (0: dirsync's default)
	CycleUnit     time.Duration // the unit of sync.cycle_hours (0: an hour)
}

// jobTimes is productionTiming in every binary built without the qiao_testknobs build tag: there
// nothing can change it. A binary built with the tag (test/scaleout builds one, to watch several
// sync cycles and a lease takeover in seconds) reads QIAO_TESTKNOBS in testknobs_on.go.
var jobTimes = jobTiming{SchedulerTick: time.Minute, SyncLeaseTTL: 2 * time.Minute}

// testKnobs names the QIAO_TESTKNOBS values in effect ("" in production builds), for the warning
// New logs.
var testKnobs string
