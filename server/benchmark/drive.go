package main

import (
	"context"
	"runtime"
	"sync"
	"time"
)

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }

// drive calls call from c goroutines in a closed loop for d, after a short
// warm-up, and records every latency.
func drive(ctx context.Context, name string, c int, d time.Duration, call func(ctx context.Context, worker int) error) result {
	warm, cancel := context.WithTimeout(ctx, d/5)
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			for warm.Err() == nil {
				_ = call(warm, w)
			}
		})
	}
	wg.Wait()
	cancel()

	deadline := time.Now().Add(d)
	lats := make([][]time.Duration, c)
	errs := make([]int, c)
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			buf := make([]time.Duration, 0, 1<<16)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := call(ctx, w); err != nil {
					errs[w]++
					continue
				}
				buf = append(buf, time.Since(t0))
			}
			lats[w] = buf
		})
	}
	wg.Wait()
	r := result{name: name, took: time.Since(start), callers: c}
	for w := range c {
		r.lat = append(r.lat, lats[w]...)
		r.errs += errs[w]
	}
	return r
}
