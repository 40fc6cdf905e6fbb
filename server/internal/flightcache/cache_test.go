package flightcache

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

// ans is an answer as the tests fetch it.
type ans struct {
	status int
	body   []byte
}

// keep keeps an answer for a minute, counting its body.
func keep(a *ans) Keep { return Keep{TTL: time.Minute, Size: len(a.body)} }

func fetchOf(f func(context.Context) (*ans, error)) func(context.Context) (*ans, Keep, error) {
	return func(ctx context.Context) (*ans, Keep, error) {
		a, err := f(ctx)
		if err != nil {
			return nil, Keep{}, err
		}
		return a, keep(a), nil
	}
}

func TestCacheServeFromCacheUntilTheyEnd(t *testing.T) {
	clk := clocktest.New()
	c := New[*ans](Config{MaxBytes: 1 << 20, Now: clk.Now})
	var fetches atomic.Int32
	fetch := func(context.Context) (*ans, error) {
		n := fetches.Add(1)
		return &ans{status: 200, body: []byte(strconv.Itoa(int(n)))}, nil
	}
	steps := []struct {
		name    string
		advance time.Duration
		key     string
		want    Result
		body    string
	}{
		{name: "first load goes upstream", key: "a", want: Miss, body: "1"},
		{name: "second load is cached", key: "a", want: Hit, body: "1"},
		{name: "another request is not", key: "b", want: Miss, body: "2"},
		{name: "still cached just before the end", advance: time.Minute - time.Nanosecond, key: "a", want: Hit, body: "1"},
		{name: "gone at the end", advance: time.Nanosecond, key: "a", want: Miss, body: "3"},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		a, res, err := c.Get(t.Context(), s.key, "", fetchOf(fetch))
		if err != nil || res != s.want || string(a.body) != s.body {
			t.Fatalf("%s: got %q, %s, %v; want %q, %s", s.name, a.body, res, err, s.body, s.want)
		}
	}
}

func TestCacheKeepOnlyWhatMayBeKept(t *testing.T) {
	c := New[*ans](Config{MaxBytes: 1 << 20})
	refused := func(context.Context) (*ans, error) { return &ans{status: 403, body: []byte("no")}, nil }
	keepIf := func(f func(context.Context) (*ans, error)) func(context.Context) (*ans, Keep, error) {
		return func(ctx context.Context) (*ans, Keep, error) {
			a, err := f(ctx)
			if a.status != 200 {
				return a, Keep{}, err // answered, but not kept
			}
			return a, keep(a), err
		}
	}
	for i, want := range []Result{Miss, Miss} {
		if _, res, _ := c.Get(t.Context(), "k", "", keepIf(refused)); res != want {
			t.Fatalf("call %d: %s, want %s (a refusal is not cached)", i+1, res, want)
		}
	}
}

func TestCacheAreBoundedInBytes(t *testing.T) {
	c := New[*ans](Config{MaxBytes: 4000})
	body := make([]byte, 1000)
	fetch := func(context.Context) (*ans, error) { return &ans{status: 200, body: body}, nil }
	for i := range 10 {
		if _, _, err := c.Get(t.Context(), strconv.Itoa(i), "", fetchOf(fetch)); err != nil {
			t.Fatal(err)
		}
	}
	if n := entries(c); n != 3 {
		t.Fatalf("%d answers of ~1.3 kB held under a 4000-byte bound, want 3", n)
	}
	// The least recently used went first: the last three are held.
	if _, res, _ := c.Get(t.Context(), "9", "", fetchOf(fetch)); res != Hit {
		t.Fatalf("the newest answer was evicted (%s)", res)
	}
	if _, res, _ := c.Get(t.Context(), "0", "", fetchOf(fetch)); res != Miss {
		t.Fatalf("the oldest answer is still held (%s)", res)
	}
	big := func(context.Context) (*ans, error) { return &ans{status: 200, body: make([]byte, 5000)}, nil }
	if _, _, err := c.Get(t.Context(), "big", "", fetchOf(big)); err != nil || entries(c) > 3 {
		t.Fatalf("an answer larger than the bound: err %v, %d held", err, entries(c))
	}
}

// Concurrent identical misses share one upstream call, and a caller who
// leaves does not take it from the others.
func TestCacheShareOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New[*ans](Config{MaxBytes: 1 << 20})
		release := make(chan struct{})
		var fetches atomic.Int32
		fetch := func(ctx context.Context) (*ans, error) {
			fetches.Add(1)
			<-release
			if ctx.Err() != nil {
				t.Error("the shared call was cancelled by its first caller leaving")
			}
			return &ans{status: 200, body: []byte("ok")}, nil
		}
		leaderCtx, leave := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		results := make(chan Result, 11)
		wg.Go(func() {
			_, res, _ := c.Get(leaderCtx, "k", "", fetchOf(fetch))
			results <- res
		})
		synctest.Wait() // the first caller is fetching
		impatient, cancel := context.WithCancel(t.Context())
		wg.Go(func() {
			if _, _, err := c.Get(impatient, "k", "", fetchOf(fetch)); err != context.Canceled {
				t.Errorf("a waiter who left: err = %v", err)
			}
		})
		for range 10 {
			wg.Go(func() {
				a, res, err := c.Get(t.Context(), "k", "", fetchOf(fetch))
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
		count := map[Result]int{}
		for r := range results {
			count[r]++
		}
		if fetches.Load() != 1 || count[Miss] != 1 || count[Shared] != 10 {
			t.Fatalf("%d upstream calls, results %v; want 1 call, 1 miss and 10 shared", fetches.Load(), count)
		}
	})
}

// A shared call that panics still ends: its waiters get an error, and the
// next call tries again.
func TestCacheFlightEndsOnPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New[*ans](Config{MaxBytes: 1 << 20})
		release := make(chan struct{})
		boom := func(context.Context) (*ans, error) { <-release; panic("bug") }
		go func() {
			defer func() { _ = recover() }()
			_, _, _ = c.Get(t.Context(), "k", "", fetchOf(boom))
		}()
		synctest.Wait()
		waited := make(chan error, 1)
		go func() {
			_, _, err := c.Get(t.Context(), "k", "", fetchOf(boom))
			waited <- err
		}()
		synctest.Wait()
		close(release)
		if err := <-waited; err != ErrAborted {
			t.Fatalf("waiter: err = %v, want ErrAborted", err)
		}
		ok := func(context.Context) (*ans, error) { return &ans{status: 200}, nil }
		if _, res, err := c.Get(t.Context(), "k", "", fetchOf(ok)); err != nil || res != Miss {
			t.Fatalf("after the panic: %s, %v; want a new call", res, err)
		}
	})
}

func entries(c *Cache[*ans]) int {
	n, _ := c.Size()
	return n
}

// Drop forgets a tag's answers, and only those.
func TestCacheDropsATag(t *testing.T) {
	c := New[*ans](Config{MaxBytes: 1 << 20})
	one := func(context.Context) (*ans, error) { return &ans{status: 200, body: []byte("x")}, nil }
	for _, kt := range [][2]string{{"a1", "A"}, {"a2", "A"}, {"b1", "B"}} {
		if _, _, err := c.Get(t.Context(), kt[0], kt[1], fetchOf(one)); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Drop("A"); n != 2 {
		t.Fatalf("Drop(A) dropped %d, want 2", n)
	}
	for key, want := range map[string]bool{"a1": false, "a2": false, "b1": true} {
		if _, ok := c.Lookup(key); ok != want {
			t.Errorf("%s held: %v, want %v", key, ok, want)
		}
	}
	if n := c.Drop("A"); n != 0 {
		t.Fatalf("a second Drop(A) dropped %d", n)
	}
}
