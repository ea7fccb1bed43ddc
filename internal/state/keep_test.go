package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/internal/state"
)

// TestKeep: a kept lease outlives its TTL; once it is lost, lost hears ErrLost and Keep stops.
func TestKeep(t *testing.T) {
	ctx := context.Background()
	st := state.NewMemory()
	defer st.Close()
	l, err := st.Lock(ctx, "k", 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	lostErr := make(chan error, 1)
	stop := state.Keep(ctx, l, 150*time.Millisecond, func(err error) { lostErr <- err })
	time.Sleep(400 * time.Millisecond) // past two TTLs: only the refreshes keep it
	if _, err := st.Lock(ctx, "k", time.Second); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("a kept lease lapsed: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lostErr:
		if !errors.Is(err, state.ErrLost) {
			t.Fatalf("lost heard %v, want ErrLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lost was never told")
	}
	stop()
}
