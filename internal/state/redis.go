package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Store on a Redis server, shared by all replicas. Keys are prefixed so one Redis can
// serve several deployments.
type Redis struct {
	c      *redis.Client
	prefix string
	trips  *atomic.Int64
}

// OpenRedis connects to the server a redis:// URL names. It does not dial until first use.
func OpenRedis(dsn string) (*Redis, error) {
	opt, err := redis.ParseURL(dsn)
	if err != nil {
		return nil, fmt.Errorf("state: bad redis DSN: %w", err)
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	return NewRedis(redis.NewClient(opt), "qiao:"), nil
}

// NewRedis wraps a client; every key is stored under prefix.
func NewRedis(c *redis.Client, prefix string) *Redis {
	r := &Redis{c: c, prefix: prefix, trips: new(atomic.Int64)}
	c.AddHook(tripHook{r.trips})
	return r
}

// RoundTrips is how many commands or pipelines this store has sent (load drivers report it per
// operation).
func (r *Redis) RoundTrips() int64 { return r.trips.Load() }

// tripHook counts round trips: a command, or a pipeline (one write and one read).
type tripHook struct{ n *atomic.Int64 }

func (h tripHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h tripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h tripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func (r *Redis) k(key string) string { return r.prefix + key }

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := r.c.Get(ctx, r.k(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("state: redis get: %w", err)
	}
	return b, nil
}

// Put implements Store.
func (r *Redis) Put(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if err := r.c.Set(ctx, r.k(key), val, ttl).Err(); err != nil {
		return fmt.Errorf("state: redis set: %w", err)
	}
	return nil
}

// PutIfAbsent implements Store.
func (r *Redis) PutIfAbsent(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	err := r.c.SetArgs(ctx, r.k(key), val, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: redis set nx: %w", err)
	}
	return true, nil
}

// Replace implements Store with SET XX KEEPTTL (Redis 6.0 or later), atomic on the server.
func (r *Redis) Replace(ctx context.Context, key string, val []byte) error {
	err := r.c.SetArgs(ctx, r.k(key), val, redis.SetArgs{Mode: "XX", KeepTTL: true}).Err()
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("state: redis set xx keepttl: %w", err)
	}
	return nil
}

// Take implements Store with GETDEL, which is atomic on the server.
func (r *Redis) Take(ctx context.Context, key string) ([]byte, error) {
	b, err := r.c.GetDel(ctx, r.k(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("state: redis getdel: %w", err)
	}
	return b, nil
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, key string) error {
	if err := r.c.Del(ctx, r.k(key)).Err(); err != nil {
		return fmt.Errorf("state: redis del: %w", err)
	}
	return nil
}

// incrScript sets the TTL only when INCR created the key, in one round trip and atomically.
var incrScript = redis.NewScript(`
local v = redis.call('INCR', KEYS[1])
if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v`)

// Incr implements Store.
func (r *Redis) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if err := checkTTL(ttl); err != nil {
		return 0, err
	}
	n, err := incrScript.Run(ctx, r.c, []string{r.k(key)}, ttl.Milliseconds()).Int64()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return 0, errNotCounter(key)
		}
		return 0, fmt.Errorf("state: redis incr: %w", err)
	}
	return n, nil
}

// decrScript decrements only a counter that exists and is above zero, so that neither a missing
// key (DECR would create it with no TTL) nor a floor is ever crossed.
var decrScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if tonumber(v) > 0 then return redis.call('DECR', KEYS[1]) end
return tonumber(v)`)

// Decr implements Store.
func (r *Redis) Decr(ctx context.Context, key string) (int64, error) {
	n, err := decrScript.Run(ctx, r.c, []string{r.k(key)}).Int64()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return 0, errNotCounter(key)
		}
		return 0, fmt.Errorf("state: redis decr: %w", err)
	}
	return n, nil
}

// Lock implements Store.
func (r *Redis) Lock(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	tok := newToken()
	ok, err := r.PutIfAbsent(ctx, key, []byte(tok), ttl)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrLocked
	}
	return &redisLease{r: r, key: r.k(key), tok: tok}, nil
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("state: redis ping: %w", err)
	}
	return nil
}

// Close implements Store.
func (r *Redis) Close() error { return r.c.Close() }

// The lease scripts act only when the key still holds this lease's token, so an expired lease never
// extends or releases a lock someone else has since taken.
var (
	refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

type redisLease struct {
	r   *Redis
	key string
	tok string
}

func (l *redisLease) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	n, err := refreshScript.Run(ctx, l.r.c, []string{l.key}, l.tok, ttl.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("state: redis refresh lease: %w", err)
	}
	if n == 0 {
		return ErrLost
	}
	return nil
}

func (l *redisLease) Release(ctx context.Context) error {
	n, err := releaseScript.Run(ctx, l.r.c, []string{l.key}, l.tok).Int64()
	if err != nil {
		return fmt.Errorf("state: redis release lease: %w", err)
	}
	if n == 0 {
		return ErrLost
	}
	return nil
}

func errNotCounter(key string) error {
	return fmt.Errorf("state: key %q holds a non-counter value", key)
}

// SetAdd implements Store with a sorted set scored by each member's time (Unix ms).
func (r *Redis) SetAdd(ctx context.Context, key, member string, until time.Time, keyTTL time.Duration) error {
	if err := checkTTL(keyTTL); err != nil {
		return err
	}
	k := r.k(key)
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, k, redis.Z{Score: float64(until.UnixMilli()), Member: member})
		p.PExpire(ctx, k, keyTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: redis zadd: %w", err)
	}
	return nil
}

// SetRemove implements Store.
func (r *Redis) SetRemove(ctx context.Context, key, member string) error {
	if err := r.c.ZRem(ctx, r.k(key), member).Err(); err != nil {
		return fmt.Errorf("state: redis zrem: %w", err)
	}
	return nil
}

// SetCount implements Store: the members whose time passed are dropped, the rest counted, in one
// transaction.
func (r *Redis) SetCount(ctx context.Context, key string) (int64, error) {
	k := r.k(key)
	var n *redis.IntCmd
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, k, "-inf", strconv.FormatInt(time.Now().UnixMilli(), 10))
		n = p.ZCard(ctx, k)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("state: redis zcard: %w", err)
	}
	return n.Val(), nil
}
