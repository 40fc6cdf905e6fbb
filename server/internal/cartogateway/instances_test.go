package cartogateway

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

func keepAll(*answer) bool { return true }

func TestInstancesServeFromCacheUntilTheyEnd(t *testing.T) {
	clk := clocktest.New()
	c := newInstances(time.Minute, 1<<20, clk.Now)
	var fetches atomic.Int32
	fetch := func(context.Context) (*answer, error) {
		n := fetches.Add(1)
		return &answer{status: 200, body: []byte(strconv.Itoa(int(n)))}, nil
	}
	steps := []struct {
		name    string
		advance time.Duration
		key     string
		want    CacheResult
		body    string
	}{
		{name: "first load goes upstream", key: "a", want: CacheMiss, body: "1"},
		{name: "second load is cached", key: "a", want: CacheHit, body: "1"},
		{name: "another request is not", key: "b", want: CacheMiss, body: "2"},
		{name: "still cached just before the end", advance: time.Minute - time.Nanosecond, key: "a", want: CacheHit, body: "1"},
		{name: "gone at the end", advance: time.Nanosecond, key: "a", want: CacheMiss, body: "3"},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		a, res, err := c.get(t.Context(), s.key, fetch, keepAll)
		if err != nil || res != s.want || string(a.body) != s.body {
			t.Fatalf("%s: got %q, %s, %v; want %q, %s", s.name, a.body, res, err, s.body, s.want)
		}
	}
}

func TestInstancesKeepOnlyWhatMayBeKept(t *testing.T) {
	c := newInstances(time.Minute, 1<<20, time.Now)
	refused := func(context.Context) (*answer, error) { return &answer{status: 403, body: []byte("no")}, nil }
	keep := func(a *answer) bool { return a.status == 200 }
	for i, want := range []CacheResult{CacheMiss, CacheMiss} {
		if _, res, _ := c.get(t.Context(), "k", refused, keep); res != want {
			t.Fatalf("call %d: %s, want %s (a refusal is not cached)", i+1, res, want)
		}
	}
}

func TestInstancesAreBoundedInBytes(t *testing.T) {
	c := newInstances(time.Minute, 4000, time.Now)
	body := make([]byte, 1000)
	fetch := func(context.Context) (*answer, error) { return &answer{status: 200, body: body}, nil }
	for i := range 10 {
		if _, _, err := c.get(t.Context(), strconv.Itoa(i), fetch, keepAll); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.len(); n != 3 {
		t.Fatalf("%d answers of ~1.3 kB held under a 4000-byte bound, want 3", n)
	}
	// The least recently used went first: the last three are held.
	if _, res, _ := c.get(t.Context(), "9", fetch, keepAll); res != CacheHit {
		t.Fatalf("the newest answer was evicted (%s)", res)
	}
	if _, res, _ := c.get(t.Context(), "0", fetch, keepAll); res != CacheMiss {
		t.Fatalf("the oldest answer is still held (%s)", res)
	}
	big := func(context.Context) (*answer, error) { return &answer{status: 200, body: make([]byte, 5000)}, nil }
	if _, _, err := c.get(t.Context(), "big", big, keepAll); err != nil || c.len() > 3 {
		t.Fatalf("an answer larger than the bound: err %v, %d held", err, c.len())
	}
}

// Concurrent identical misses share one upstream call, and a caller who
// leaves does not take it from the others.
func TestInstancesShareOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newInstances(time.Minute, 1<<20, time.Now)
		release := make(chan struct{})
		var fetches atomic.Int32
		fetch := func(ctx context.Context) (*answer, error) {
			fetches.Add(1)
			<-release
			if ctx.Err() != nil {
				t.Error("the shared call was cancelled by its first caller leaving")
			}
			return &answer{status: 200, body: []byte("ok")}, nil
		}
		leaderCtx, leave := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		results := make(chan CacheResult, 11)
		wg.Go(func() {
			_, res, _ := c.get(leaderCtx, "k", fetch, keepAll)
			results <- res
		})
		synctest.Wait() // the first caller is fetching
		impatient, cancel := context.WithCancel(t.Context())
		wg.Go(func() {
			if _, _, err := c.get(impatient, "k", fetch, keepAll); err != context.Canceled {
				t.Errorf("a waiter who left: err = %v", err)
			}
		})
		for range 10 {
			wg.Go(func() {
				a, res, err := c.get(t.Context(), "k", fetch, keepAll)
				if err != nil || string(a.body) != "ok" {
					t.Errorf("shared answer: %v, %v", a, err)
				}
				results <- res
			})
		}
		synctest.Wait()
		cancel()
		leave()
		close(release)
		wg.Wait()
		close(results)
		count := map[CacheResult]int{}
		for r := range results {
			count[r]++
		}
		if fetches.Load() != 1 || count[CacheMiss] != 1 || count[CacheShared] != 10 {
			t.Fatalf("%d upstream calls, results %v; want 1 call, 1 miss and 10 shared", fetches.Load(), count)
		}
	})
}

// A shared call that panics still ends: its waiters get an error, and the
// next call tries again.
func TestInstancesFlightEndsOnPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newInstances(time.Minute, 1<<20, time.Now)
		release := make(chan struct{})
		boom := func(context.Context) (*answer, error) { <-release; panic("bug") }
		go func() {
			defer func() { _ = recover() }()
			_, _, _ = c.get(t.Context(), "k", boom, keepAll)
		}()
		synctest.Wait()
		waited := make(chan error, 1)
		go func() {
			_, _, err := c.get(t.Context(), "k", boom, keepAll)
			waited <- err
		}()
		synctest.Wait()
		close(release)
		if err := <-waited; err != errFlightAborted {
			t.Fatalf("waiter: err = %v, want errFlightAborted", err)
		}
		ok := func(context.Context) (*answer, error) { return &answer{status: 200}, nil }
		if _, res, err := c.get(t.Context(), "k", ok, keepAll); err != nil || res != CacheMiss {
			t.Fatalf("after the panic: %s, %v; want a new call", res, err)
		}
	})
}
