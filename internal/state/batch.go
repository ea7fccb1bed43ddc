package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

type opKind uint8

const (
	opGet opKind = iota
	opPut
	opTake
	opDelete
)

// Op is one operation of a Batch: a Get, a Put (of Put for TTL), a Take or a Delete. After the
// batch, Val holds what a Get or Take read and Err what the operation returned (ErrNotFound for a
// missing key).
type Op struct {
	Key  string
	Put  []byte
	TTL  time.Duration
	kind opKind

	Val []byte
	Err error
}

// Get is a Get operation for Batch.
func Get(key string) *Op { return &Op{Key: key} }

// PutOp is a Put operation for Batch.
func PutOp(key string, val []byte, ttl time.Duration) *Op {
	return &Op{Key: key, Put: val, TTL: ttl, kind: opPut}
}

// TakeOp is a Take operation for Batch: of concurrent Takes of one key, in batches or not,
// exactly one reads the value.
func TakeOp(key string) *Op { return &Op{Key: key, kind: opTake} }

// DeleteOp is a Delete operation for Batch.
func DeleteOp(key string) *Op { return &Op{Key: key, kind: opDelete} }

// Batcher is a Store that runs several operations in one round trip.
type Batcher interface {
	Batch(ctx context.Context, ops ...*Op) error
}

// Batch runs ops in order, in one round trip when s is a Batcher (Redis pipelines them), else one
// by one. It is not a transaction: another client's operation may fall between two of them, and
// each has its own outcome in Err. The error returned is for the batch as a whole (the server
// could not be reached).
func Batch(ctx context.Context, s Store, ops ...*Op) error {
	if b, ok := s.(Batcher); ok {
		return b.Batch(ctx, ops...)
	}
	for _, op := range ops {
		switch op.kind {
		case opPut:
			op.Err = s.Put(ctx, op.Key, op.Put, op.TTL)
		case opTake:
			op.Val, op.Err = s.Take(ctx, op.Key)
		case opDelete:
			op.Err = s.Delete(ctx, op.Key)
		default:
			op.Val, op.Err = s.Get(ctx, op.Key)
		}
	}
	return nil
}

// Batch implements Batcher with a pipeline.
func (r *Redis) Batch(ctx context.Context, ops ...*Op) error {
	for _, op := range ops {
		if op.kind == opPut {
			if err := checkTTL(op.TTL); err != nil {
				return err
			}
		}
	}
	cmds := make([]redis.Cmder, len(ops))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, op := range ops {
			switch op.kind {
			case opPut:
				cmds[i] = p.Set(ctx, r.k(op.Key), op.Put, op.TTL)
			case opTake:
				cmds[i] = p.GetDel(ctx, r.k(op.Key))
			case opDelete:
				cmds[i] = p.Del(ctx, r.k(op.Key))
			default:
				cmds[i] = p.Get(ctx, r.k(op.Key))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("state: redis pipeline: %w", err)
	}
	for i, op := range ops {
		switch c := cmds[i].(type) {
		case *redis.StatusCmd, *redis.IntCmd:
			if err := c.Err(); err != nil {
				op.Err = fmt.Errorf("state: redis %s: %w", c.Name(), err)
			}
		case *redis.StringCmd:
			b, err := c.Bytes()
			switch {
			case errors.Is(err, redis.Nil):
				op.Err = ErrNotFound
			case err != nil:
				op.Err = fmt.Errorf("state: redis %s: %w", c.Name(), err)
			default:
				op.Val = b
			}
		}
	}
	return nil
}
