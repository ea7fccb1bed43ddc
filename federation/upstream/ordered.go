package upstream

import (
	"context"
	"sync"
)

// Ordered runs fetch for the items 0…n-1, up to ahead of them at a time, and hands what each
// emits to consume in item order: consume sees exactly what running the fetches one after another
// would have shown it, but a directory read waits for the platform once per ahead departments
// instead of once per department. An item emits at most two values before its turn comes, so
// memory stays bounded by ahead. The first error, of a fetch or of consume, stops everything and
// is returned once every fetch has stopped.
func Ordered[T any](ctx context.Context, n, ahead int, fetch func(ctx context.Context, i int, emit func(T) error) error, consume func(T) error) error {
	if ahead < 1 {
		ahead = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	type item struct {
		vals chan T
		err  chan error
	}
	launch := func(i int) item {
		it := item{vals: make(chan T, 2), err: make(chan error, 1)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fetch(ctx, i, func(v T) error {
				select {
				case it.vals <- v:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			close(it.vals)
			it.err <- err
		}()
		return it
	}
	queue := make([]item, 0, ahead)
	next := 0
	for i := 0; i < n; i++ {
		for ; next < n && next < i+ahead; next++ {
			queue = append(queue, launch(next))
		}
		it := queue[0]
		queue = queue[1:]
		for v := range it.vals {
			if err := consume(v); err != nil {
				return err
			}
		}
		if err := <-it.err; err != nil {
			return err
		}
	}
	return nil
}
