package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Op is one operation of a Batch: a Get (Put nil) or a Put of Put for TTL. After the batch, Val
// holds what a Get read and Err what the operation returned (ErrNotFound for a missing key).
type Op struct {
	Key string
	Put []byte
	TTL time.Duration

	Val []byte
	Err error
}

// Get is a Get operation for Batch.
func Get(key string) *Op { return &Op{Key: key} }

// PutOp is a Put operation for Batch.
func PutOp(key string, val []byte, ttl time.Duration) *Op { return &Op{Key: key, Put: val, TTL: ttl} }

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
		if op.Put != nil {
			op.Err = s.Put(ctx, op.Key, op.Put, op.TTL)
		} else {
			op.Val, op.Err = s.Get(ctx, op.Key)
		}
	}
	return nil
}

// Batch implements Batcher with a pipeline.
func (r *Redis) Batch(ctx context.Context, ops ...*Op) error {
	for _, op := range ops {
		if op.Put != nil {
			if err := checkTTL(op.TTL); err != nil {
				return err
			}
		}
	}
	cmds := make([]redis.Cmder, len(ops))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, op := range ops {
			if op.Put != nil {
				cmds[i] = p.Set(ctx, r.k(op.Key), op.Put, op.TTL)
			} else {
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
		case *redis.StatusCmd:
			if err := c.Err(); err != nil {
				op.Err = fmt.Errorf("state: redis set: %w", err)
			}
		case *redis.StringCmd:
			b, err := c.Bytes()
			switch {
			case errors.Is(err, redis.Nil):
				op.Err = ErrNotFound
			case err != nil:
				op.Err = fmt.Errorf("state: redis get: %w", err)
			default:
				op.Val = b
			}
		}
	}
	return nil
}
