package state_test

import (
	"context"
	"os"
	"testing"

	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/internal/state/statetest"
)

func TestMemory(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		s := state.NewMemory()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestRedis runs the suite against the server QIAO_TEST_REDIS names (CI always sets it).
func TestRedis(t *testing.T) {
	dsn := os.Getenv("QIAO_TEST_REDIS")
	if dsn == "" {
		t.Skip("QIAO_TEST_REDIS not set: Redis conformance suite skipped (CI sets it, e.g. redis://127.0.0.1:6379/0)")
	}
	statetest.Run(t, func(t *testing.T) state.Store {
		s, err := state.Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatalf("QIAO_TEST_REDIS=%s does not answer: %v", dsn, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestOpen(t *testing.T) {
	for _, bad := range []string{"mysql://x", "redis://[bad"} {
		if _, err := state.Open(bad); err == nil {
			t.Errorf("Open(%q) accepted", bad)
		}
	}
	s, err := state.Open("memory")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
