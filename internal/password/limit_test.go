package password

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The limiter never lets more than its slots run, and refuses (ErrBusy) once a caller has waited
// its whole wait.
func TestLimiterBoundsConcurrentChecks(t *testing.T) {
	cheap := Params{Memory: 8 * 1024, Time: 1, Threads: 1}
	h, err := Hash("pw", cheap)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLimiter(2, time.Minute)
	var running, peak atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			ok, err := Verify("pw", h)
			running.Add(-1)
			<-l.slots
			if !ok || err != nil {
				t.Error("verify failed", err)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d checks ran at once through a 2-slot limiter", p)
	}

	busy := NewLimiter(1, 50*time.Millisecond)
	busy.slots <- struct{}{} // one check in progress
	start := time.Now()
	if _, err := busy.Verify(context.Background(), "pw", h); !errors.Is(err, ErrBusy) {
		t.Fatalf("a full limiter: %v, want ErrBusy", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("a full limiter kept the caller far past its wait")
	}
	if busy.Busy() != 1 || busy.Checks() != 0 {
		t.Fatalf("counters: busy %d checks %d", busy.Busy(), busy.Checks())
	}
	<-busy.slots
	if ok, err := busy.Verify(context.Background(), "pw", h); !ok || err != nil || busy.Checks() != 1 {
		t.Fatalf("a free limiter: %v %v, checks %d", ok, err, busy.Checks())
	}
	if DefaultSlots(Default) < 1 {
		t.Fatal("DefaultSlots below 1")
	}
}
