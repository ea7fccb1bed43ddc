package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"time"
)

// Memory is a Store in this process's memory. Expired keys are invisible at once and swept
// periodically.
type Memory struct {
	mu     sync.Mutex
	items  map[string]memItem
	sets   map[string]*memSet
	now    func() time.Time
	stop   chan struct{}
	closed sync.Once
}

type memItem struct {
	val []byte
	exp time.Time
}

// NewMemory returns an empty in-memory store with a background sweeper.
func NewMemory() *Memory {
	m := &Memory{items: map[string]memItem{}, sets: map[string]*memSet{}, now: time.Now, stop: make(chan struct{})}
	go m.sweep(time.Minute)
	return m
}

func (m *Memory) sweep(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.mu.Lock()
			now := m.now()
			for k, it := range m.items {
				if !now.Before(it.exp) {
					delete(m.items, k)
				}
			}
			for k, set := range m.sets {
				if !now.Before(set.exp) {
					delete(m.sets, k)
				}
			}
			m.mu.Unlock()
		}
	}
}

// live returns the unexpired item at key; the caller holds mu.
func (m *Memory) live(key string) (memItem, bool) {
	it, ok := m.items[key]
	if !ok {
		return memItem{}, false
	}
	if !m.now().Before(it.exp) {
		delete(m.items, key)
		return memItem{}, false
	}
	return it, true
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.live(key)
	if !ok {
		return nil, ErrNotFound
	}
	return clone(it.val), nil
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, key string, val []byte, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items[key] = memItem{val: clone(val), exp: m.now().Add(ttl)}
	return nil
}

// PutIfAbsent implements Store.
func (m *Memory) PutIfAbsent(_ context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.live(key); ok {
		return false, nil
	}
	m.items[key] = memItem{val: clone(val), exp: m.now().Add(ttl)}
	return true, nil
}

// Replace implements Store.
func (m *Memory) Replace(_ context.Context, key string, val []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.live(key)
	if !ok {
		return ErrNotFound
	}
	m.items[key] = memItem{val: clone(val), exp: it.exp}
	return nil
}

// Take implements Store.
func (m *Memory) Take(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.live(key)
	if !ok {
		return nil, ErrNotFound
	}
	delete(m.items, key)
	return it.val, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
	delete(m.sets, key)
	return nil
}

// Incr implements Store.
func (m *Memory) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	if err := checkTTL(ttl); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.live(key)
	var n int64
	if ok {
		var err error
		if n, err = strconv.ParseInt(string(it.val), 10, 64); err != nil {
			return 0, errNotCounter(key)
		}
	} else {
		it.exp = m.now().Add(ttl)
	}
	n++
	it.val = strconv.AppendInt(nil, n, 10)
	m.items[key] = it
	return n, nil
}

// Decr implements Store.
func (m *Memory) Decr(_ context.Context, key string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.live(key)
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(it.val), 10, 64)
	if err != nil {
		return 0, errNotCounter(key)
	}
	if n > 0 {
		n--
	}
	it.val = strconv.AppendInt(nil, n, 10)
	m.items[key] = it
	return n, nil
}

// Lock implements Store.
func (m *Memory) Lock(_ context.Context, key string, ttl time.Duration) (Lease, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.live(key); ok {
		return nil, ErrLocked
	}
	tok := newToken()
	m.items[key] = memItem{val: []byte(tok), exp: m.now().Add(ttl)}
	return &memLease{m: m, key: key, tok: tok}, nil
}

// Ping implements Store.
func (m *Memory) Ping(context.Context) error { return nil }

// Close stops the sweeper.
func (m *Memory) Close() error {
	m.closed.Do(func() { close(m.stop) })
	return nil
}

type memLease struct {
	m   *Memory
	key string
	tok string
}

func (l *memLease) Refresh(_ context.Context, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	it, ok := l.m.live(l.key)
	if !ok || string(it.val) != l.tok {
		return ErrLost
	}
	it.exp = l.m.now().Add(ttl)
	l.m.items[l.key] = it
	return nil
}

func (l *memLease) Release(context.Context) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	it, ok := l.m.live(l.key)
	if !ok || string(it.val) != l.tok {
		return ErrLost
	}
	delete(l.m.items, l.key)
	return nil
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// memSet is a set of members with the time each stays live (SetAdd).
type memSet struct {
	members map[string]time.Time
	exp     time.Time
}

// SetAdd implements Store.
func (m *Memory) SetAdd(_ context.Context, key, member string, until time.Time, keyTTL time.Duration) error {
	if err := checkTTL(keyTTL); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.liveSet(key)
	if set == nil {
		set = &memSet{members: map[string]time.Time{}}
		m.sets[key] = set
	}
	set.members[member] = until
	set.exp = m.now().Add(keyTTL)
	return nil
}

// SetRemove implements Store.
func (m *Memory) SetRemove(_ context.Context, key, member string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if set := m.liveSet(key); set != nil {
		delete(set.members, member)
	}
	return nil
}

// SetCount implements Store.
func (m *Memory) SetCount(_ context.Context, key string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.liveSet(key)
	if set == nil {
		return 0, nil
	}
	now := m.now()
	for k, until := range set.members {
		if !now.Before(until) {
			delete(set.members, k)
		}
	}
	return int64(len(set.members)), nil
}

// liveSet returns the unexpired set at key (nil when there is none); the caller holds mu.
func (m *Memory) liveSet(key string) *memSet {
	set := m.sets[key]
	if set != nil && !m.now().Before(set.exp) {
		delete(m.sets, key)
		return nil
	}
	return set
}
