package password

import (
	"bufio"
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ErrBusy means every verification slot stayed taken for the limiter's whole wait.
var ErrBusy = errors.New("password: too many verifications in progress")

// Limiter bounds how many argon2 verifications run at once. Each one allocates its memory cost
// (64 MiB by default) for its whole duration, so without a bound an unauthenticated flood of login
// attempts is a flood of allocations: 60 at once took a 2-core machine to 4.2 GB.
type Limiter struct {
	slots  chan struct{}
	wait   time.Duration
	checks atomic.Int64
	busy   atomic.Int64
}

// NewLimiter allows n verifications at once; a caller waits at most wait for a slot.
func NewLimiter(n int, wait time.Duration) *Limiter {
	if n < 1 {
		n = 1
	}
	return &Limiter{slots: make(chan struct{}, n), wait: wait}
}

// Slots is how many verifications may run at once.
func (l *Limiter) Slots() int { return cap(l.slots) }

// DefaultSlots sizes a limiter from the machine: at most a quarter of the memory the process may
// use (its cgroup limit, else the machine's) spent on argon2 at once, and no more runs than two
// per CPU (beyond that they only queue for the cores while holding their memory).
func DefaultSlots(p Params) int {
	perCheck := int64(p.Memory) * 1024
	n := int64(2 * runtime.NumCPU())
	if mem := memoryLimit(); mem > 0 && perCheck > 0 {
		n = min(n, mem/4/perCheck)
	}
	return int(max(n, 1))
}

// Checks is how many verifications have run.
func (l *Limiter) Checks() int64 { return l.checks.Load() }

// Busy is how many verifications were refused with ErrBusy.
func (l *Limiter) Busy() int64 { return l.busy.Load() }

// Verify is the package's Verify, run in a slot.
func (l *Limiter) Verify(ctx context.Context, pw, phc string) (bool, error) {
	if err := l.acquire(ctx); err != nil {
		l.busy.Add(1)
		return false, err
	}
	defer func() { <-l.slots }()
	l.checks.Add(1)
	return Verify(pw, phc)
}

func (l *Limiter) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ErrBusy
	}
}

// memoryLimit is the cgroup v2 memory limit, else MemTotal, in bytes (0 when neither is known).
func memoryLimit() int64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
