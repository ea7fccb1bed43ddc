// Package state is qiao's ephemeral state: auth requests, codes, login state, SSO sessions, replay
// nonces, rate-limit counters and locks. Every key has a TTL. The in-memory store serves one
// process; the Redis store lets many replicas share it.
package state

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Errors returned by stores.
var (
	ErrNotFound = errors.New("state: key not found")
	ErrLocked   = errors.New("state: lock is held by someone else")
	ErrLost     = errors.New("state: lease lost (expired or taken over)")
)

// Store is an ephemeral key-value store with TTLs. Keys are opaque strings; callers namespace them
// ("code:", "sess:", ...). A ttl must be positive.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// PutIfAbsent stores val only when key does not exist; it reports whether it stored. It is the
	// primitive for replay detection.
	PutIfAbsent(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	// Replace stores val at key only when key exists, keeping the TTL it has left; a missing (or
	// expired) key stays missing and ErrNotFound is returned. An update of something that ends by
	// TTL (a session changed in the background) neither extends its life nor brings it back.
	Replace(ctx context.Context, key string, val []byte) error
	// Take gets and deletes key atomically: of concurrent Takes, exactly one gets the value.
	Take(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	// Incr adds 1 to the counter at key and returns the new value. The TTL is set when the counter
	// is created and not extended by later increments (a fixed window).
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	// Decr takes 1 from an existing counter, never below 0, keeping its TTL, and returns the new
	// value; a missing counter stays missing (0). It gives back an attempt reserved with Incr.
	Decr(ctx context.Context, key string) (int64, error)
	// Lock takes a lease on key for ttl, or returns ErrLocked.
	Lock(ctx context.Context, key string, ttl time.Duration) (Lease, error)
	// SetAdd puts member in the set at key, live until the time until (adding it again moves its
	// time); the set itself lives keyTTL after this add. It keeps a count of things that end by
	// TTL (an enterprise's sessions) without reading each.
	SetAdd(ctx context.Context, key, member string, until time.Time, keyTTL time.Duration) error
	// SetRemove takes member out of the set at key (nothing when it is not there).
	SetRemove(ctx context.Context, key, member string) error
	// SetCount counts the set's members whose time has not passed, and drops the others.
	SetCount(ctx context.Context, key string) (int64, error)
	Ping(ctx context.Context) error
	Close() error
}

// Lease is a held lock. Refresh extends it; Release gives it up. Both return ErrLost when the lease
// expired and someone else may have taken the lock.
type Lease interface {
	Refresh(ctx context.Context, ttl time.Duration) error
	Release(ctx context.Context) error
}

// Open returns the store a DSN names: "memory" or "redis://[user:pass@]host:port[/db]".
func Open(dsn string) (Store, error) {
	switch {
	case dsn == "" || dsn == "memory":
		return NewMemory(), nil
	case strings.HasPrefix(dsn, "redis://") || strings.HasPrefix(dsn, "rediss://"):
		return OpenRedis(dsn)
	default:
		u, _ := url.Parse(dsn)
		scheme := dsn
		if u != nil && u.Scheme != "" {
			scheme = u.Scheme + "://"
		}
		return nil, fmt.Errorf("state: unsupported DSN %q (want memory or redis://host:port/db)", scheme)
	}
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("state: ttl must be positive, got %v", ttl)
	}
	return nil
}

// Keep refreshes l every ttl/3 while a long task holds it, until the returned stop is called or
// ctx ends. A failed refresh is retried at the next tick, unless lost is set: then lost is told
// (the lock may be someone else's now) and refreshing stops. stop waits for the refresher.
func Keep(ctx context.Context, l Lease, ttl time.Duration, lost func(error)) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := l.Refresh(ctx, ttl); err != nil && lost != nil {
					lost(err)
					return
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
