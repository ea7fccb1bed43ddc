// Package statetest is the conformance suite every state.Store passes, run unchanged against the
// in-memory store and against a real Redis server.
package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/internal/state"
)

// NewStore returns an empty, ready store for one test.
type NewStore func(t *testing.T) state.Store

// Tests are the conformance tests, by name; Run runs them all as subtests.
var Tests = []struct {
	Name string
	Run  func(t *testing.T, newStore NewStore)
}{
	{"GetPut", testGetPut},
	{"TTLRequired", testTTLRequired},
	{"Expiry", testExpiry},
	{"PutIfAbsent", testPutIfAbsent},
	{"ReplaceKeepsTTLAndCreatesNothing", testReplace},
	{"TakeIsSingleUse", testTakeIsSingleUse},
	{"Decr", testDecr},
	{"IncrFixedWindow", testIncrFixedWindow},
	{"Lock", testLock},
	{"LockExpiresAndIsNotStolenBack", testLockExpiresAndIsNotStolenBack},
	{"ConcurrentLockOneWinner", testConcurrentLockOneWinner},
	{"Ping", testPing},
	{"Batch", testBatch},
	{"SetCountsLiveMembers", testSetCount},
}

// Run runs the suite. newStore returns an empty store (or one whose keys cannot collide with
// other runs); it is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) state.Store) {
	for _, tc := range Tests {
		t.Run(tc.Name, func(t *testing.T) { tc.Run(t, newStore) })
	}
}

var ctx = context.Background()

// ---- helpers shared by the tests

// seq makes keys unique per test, so a shared server needs no flushing.
var seq atomic.Int64

func key(name string) string {
	return fmt.Sprintf("statetest:%d:%d:%s", time.Now().UnixNano(), seq.Add(1), name)
}

func testGetPut(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("a")
	if _, err := s.Get(ctx, k); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
	val := []byte("v1")
	if err := s.Put(ctx, k, val, time.Minute); err != nil {
		t.Fatal(err)
	}
	val[0] = 'X' // the store must have kept its own copy
	got, err := s.Get(ctx, k)
	if err != nil || string(got) != "v1" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if err := s.Put(ctx, k, []byte("v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, k); string(got) != "v2" {
		t.Fatalf("overwrite: Get = %q", got)
	}
	bin := []byte{0, 1, 2, 255}
	if err := s.Put(ctx, k, bin, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, k); !bytes.Equal(got, bin) {
		t.Fatalf("binary value = %x", got)
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}

func testTTLRequired(t *testing.T, newStore NewStore) {
	s := newStore(t)
	if err := s.Put(ctx, key("x"), []byte("v"), 0); err == nil {
		t.Fatal("Put with zero ttl accepted")
	}
	if _, err := s.Incr(ctx, key("x"), -time.Second); err == nil {
		t.Fatal("Incr with negative ttl accepted")
	}
	if _, err := s.Lock(ctx, key("x"), 0); err == nil {
		t.Fatal("Lock with zero ttl accepted")
	}
}

func testExpiry(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("exp")
	if err := s.Put(ctx, k, []byte("v"), 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k); err != nil {
		t.Fatalf("Get before expiry: %v", err)
	}
	time.Sleep(800 * time.Millisecond)
	if _, err := s.Get(ctx, k); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get after expiry = %v, want ErrNotFound", err)
	}
	if _, err := s.Take(ctx, k); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Take after expiry = %v", err)
	}
	ok, err := s.PutIfAbsent(ctx, k, []byte("again"), time.Minute)
	if err != nil || !ok {
		t.Fatalf("PutIfAbsent after expiry = %v, %v", ok, err)
	}
}

func testPutIfAbsent(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("nx")
	ok, err := s.PutIfAbsent(ctx, k, []byte("first"), time.Minute)
	if err != nil || !ok {
		t.Fatalf("first = %v, %v", ok, err)
	}
	ok, err = s.PutIfAbsent(ctx, k, []byte("second"), time.Minute)
	if err != nil || ok {
		t.Fatalf("second = %v, %v", ok, err)
	}
	if got, _ := s.Get(ctx, k); string(got) != "first" {
		t.Fatalf("value = %q", got)
	}
}

func testTakeIsSingleUse(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("code")
	if err := s.Put(ctx, k, []byte("payload"), time.Minute); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.Take(ctx, k)
			switch {
			case err == nil:
				if string(v) != "payload" {
					t.Errorf("Take = %q", v)
				}
				wins.Add(1)
			case !errors.Is(err, state.ErrNotFound):
				t.Errorf("Take: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent Takes succeeded, want exactly 1", wins.Load())
	}
}

func testDecr(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("decr")
	if n, err := s.Decr(ctx, k); err != nil || n != 0 {
		t.Fatalf("Decr of a missing counter = %d, %v", n, err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Decr created the counter: %v", err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Incr(ctx, k, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Decr(ctx, k); err != nil || n != 2 {
		t.Fatalf("Decr = %d, %v; want 2", n, err)
	}
	_, _ = s.Decr(ctx, k)
	_, _ = s.Decr(ctx, k)
	if n, err := s.Decr(ctx, k); err != nil || n != 0 {
		t.Fatalf("Decr below zero = %d, %v; want 0", n, err)
	}
	if n, err := s.Incr(ctx, k, time.Minute); err != nil || n != 1 {
		t.Fatalf("Incr after Decr = %d, %v; want 1", n, err)
	}
	nc := key("notcounter")
	if err := s.Put(ctx, nc, []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decr(ctx, nc); err == nil {
		t.Fatal("Decr of a non-counter succeeded")
	}
}

func testIncrFixedWindow(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("rate")
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Incr(ctx, k, 2*time.Second); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n, err := s.Incr(ctx, k, 2*time.Second)
	if err != nil || n != 41 {
		t.Fatalf("Incr = %d, %v; want 41", n, err)
	}
	// Later increments must not push the window out: the counter resets after the first TTL.
	// The window is wide so that a slow machine still fits 41 increments in it.
	time.Sleep(2200 * time.Millisecond)
	n, err = s.Incr(ctx, k, 2*time.Second)
	if err != nil || n != 1 {
		t.Fatalf("Incr after window = %d, %v; want 1", n, err)
	}
	if err := s.Put(ctx, k, []byte("not a number"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, k, time.Minute); err == nil {
		t.Fatal("Incr of a non-counter succeeded")
	}
}

func testLock(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("lock")
	l1, err := s.Lock(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(ctx, k, time.Minute); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("second Lock = %v, want ErrLocked", err)
	}
	if err := l1.Refresh(ctx, time.Minute); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if err := l1.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := l1.Release(ctx); !errors.Is(err, state.ErrLost) {
		t.Fatalf("double Release = %v, want ErrLost", err)
	}
	l2, err := s.Lock(ctx, k, time.Minute)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	_ = l2.Release(ctx)
}

func testLockExpiresAndIsNotStolenBack(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("lease")
	l1, err := s.Lock(ctx, k, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	l2, err := s.Lock(ctx, k, time.Minute)
	if err != nil {
		t.Fatalf("Lock after expiry: %v", err)
	}
	// The expired holder must not extend or release the new holder's lock.
	if err := l1.Refresh(ctx, time.Minute); !errors.Is(err, state.ErrLost) {
		t.Fatalf("stale Refresh = %v, want ErrLost", err)
	}
	if err := l1.Release(ctx); !errors.Is(err, state.ErrLost) {
		t.Fatalf("stale Release = %v, want ErrLost", err)
	}
	if _, err := s.Lock(ctx, k, time.Minute); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("lock was released by the stale holder: %v", err)
	}
	_ = l2.Release(ctx)
}

func testConcurrentLockOneWinner(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("race")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Lock(ctx, k, time.Minute)
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, state.ErrLocked) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d lockers won, want 1", wins.Load())
	}
}

func testPing(t *testing.T, newStore NewStore) {
	if err := newStore(t).Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// testReplace: Replace changes an existing key's value and keeps its TTL (the key still expires
// when it would have), and never creates a key, missing or expired.
func testReplace(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("replace")
	if err := s.Replace(ctx, k, []byte("x")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Replace of a missing key = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Replace created a missing key: %v", err)
	}
	if err := s.Put(ctx, k, []byte("v1"), 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	val := []byte("v2")
	if err := s.Replace(ctx, k, val); err != nil {
		t.Fatalf("Replace of a live key: %v", err)
	}
	val[0] = 'X' // the store must have kept its own copy
	if got, err := s.Get(ctx, k); err != nil || string(got) != "v2" {
		t.Fatalf("after Replace: Get = %q, %v", got, err)
	}
	// The TTL was kept: the key expires on its own. A Replace that dropped the TTL (plain SET)
	// would keep it forever and hit the ceiling.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s.Get(ctx, k); errors.Is(err, state.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a replaced key did not expire within 5 s of a 400 ms TTL: Replace dropped the TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Replace(ctx, k, []byte("v3")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Replace of an expired key = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Replace brought an expired key back: %v", err)
	}
}

// testBatch: a batch's operations happen in order, each with its own outcome, and the store is
// left as the same operations one by one would leave it.
func testBatch(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Put(ctx, "b:there", []byte("v0"), time.Minute); err != nil {
		t.Fatal(err)
	}
	put, getNew, getThere, getMissing := state.PutOp("b:new", []byte("v1"), time.Minute), state.Get("b:new"), state.Get("b:there"), state.Get("b:missing")
	if err := state.Batch(ctx, s, put, getNew, getThere, getMissing); err != nil {
		t.Fatal(err)
	}
	if put.Err != nil {
		t.Fatalf("put: %v", put.Err)
	}
	if getNew.Err != nil || string(getNew.Val) != "v1" {
		t.Fatalf("a get after a put in the batch = %q, %v; want v1", getNew.Val, getNew.Err)
	}
	if getThere.Err != nil || string(getThere.Val) != "v0" {
		t.Fatalf("get = %q, %v; want v0", getThere.Val, getThere.Err)
	}
	if !errors.Is(getMissing.Err, state.ErrNotFound) || getMissing.Val != nil {
		t.Fatalf("get of a missing key = %q, %v; want ErrNotFound", getMissing.Val, getMissing.Err)
	}
	if b, err := s.Get(ctx, "b:new"); err != nil || string(b) != "v1" {
		t.Fatalf("after the batch, get = %q, %v", b, err)
	}
	if err := state.Batch(ctx, s, state.PutOp("b:nottl", []byte("x"), 0)); err == nil {
		if _, err := s.Get(ctx, "b:nottl"); err == nil {
			t.Fatal("a batch stored a put without a TTL")
		}
	}

	// Take and Delete: a take reads and removes, a delete removes, a take of a missing key is
	// ErrNotFound, a delete of one is not an error.
	take, takeMissing, del, delMissing, after := state.TakeOp("b:new"), state.TakeOp("b:missing"), state.DeleteOp("b:there"), state.DeleteOp("b:missing"), state.Get("b:new")
	if err := state.Batch(ctx, s, take, takeMissing, del, delMissing, after); err != nil {
		t.Fatal(err)
	}
	if take.Err != nil || string(take.Val) != "v1" {
		t.Fatalf("take = %q, %v; want v1", take.Val, take.Err)
	}
	if !errors.Is(takeMissing.Err, state.ErrNotFound) {
		t.Fatalf("take of a missing key: %v; want ErrNotFound", takeMissing.Err)
	}
	if del.Err != nil || delMissing.Err != nil {
		t.Fatalf("delete: %v; delete of a missing key: %v", del.Err, delMissing.Err)
	}
	if !errors.Is(after.Err, state.ErrNotFound) {
		t.Fatalf("a get after a take in the batch = %q, %v; want ErrNotFound", after.Val, after.Err)
	}
	for _, k := range []string{"b:new", "b:there"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("after the batch, %s: %v; want ErrNotFound", k, err)
		}
	}

	// Of concurrent batches taking one key, exactly one reads it.
	for round := 0; round < 20; round++ {
		k := fmt.Sprintf("b:race%d", round)
		if err := s.Put(ctx, k, []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var won atomic.Int32
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				op := state.TakeOp(k)
				if err := state.Batch(ctx, s, op, state.Get("b:other")); err == nil && op.Err == nil {
					won.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Fatalf("round %d: %d concurrent batch takes read the key; want exactly 1", round, n)
		}
	}
}

// A set counts its members until each one's time passes; adding again moves a member's time,
// removing takes it out, and Delete drops the whole set.
func testSetCount(t *testing.T, newStore NewStore) {
	s := newStore(t)
	k := key("set")
	count := func(want int64) {
		t.Helper()
		if n, err := s.SetCount(ctx, k); err != nil || n != want {
			t.Fatalf("SetCount = %d, %v; want %d", n, err, want)
		}
	}
	count(0)
	if err := s.SetAdd(ctx, k, "a", time.Now().Add(time.Minute), 0); err == nil {
		t.Fatal("SetAdd without a key TTL accepted")
	}
	now := time.Now()
	for _, m := range []struct {
		name  string
		until time.Time
	}{{"a", now.Add(time.Hour)}, {"b", now.Add(400 * time.Millisecond)}, {"c", now.Add(time.Hour)}, {"c", now.Add(time.Hour)}, {"gone", now.Add(-time.Second)}} {
		if err := s.SetAdd(ctx, k, m.name, m.until, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	count(3) // c once; gone already past its time
	if err := s.SetRemove(ctx, k, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRemove(ctx, k, "never-there"); err != nil {
		t.Fatal(err)
	}
	count(2)
	time.Sleep(700 * time.Millisecond)
	count(1) // b's time passed
	// Adding again moves the time: c now ends soon.
	if err := s.SetAdd(ctx, k, "c", time.Now().Add(300*time.Millisecond), time.Hour); err != nil {
		t.Fatal(err)
	}
	count(1)
	time.Sleep(600 * time.Millisecond)
	count(0)
	if err := s.SetAdd(ctx, k, "d", time.Now().Add(time.Hour), time.Hour); err != nil {
		t.Fatal(err)
	}
	count(1)
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	count(0)
	// The set itself ends keyTTL after its last add, whatever its members' times.
	k2 := key("set-ttl")
	if err := s.SetAdd(ctx, k2, "x", time.Now().Add(time.Hour), 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	if n, err := s.SetCount(ctx, k2); err != nil || n != 0 {
		t.Fatalf("SetCount of an expired set = %d, %v", n, err)
	}
}
