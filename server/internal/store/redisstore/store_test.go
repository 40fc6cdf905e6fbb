package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/redisstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/storetest"
)

var (
	ctx = context.Background()
	key = bytes.Repeat([]byte{0x42}, 32)
)

// newClient returns a client for url, closed when the test ends.
func newClient(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	c, err := redisstore.NewClient(url)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// open opens a store on its own client, closed when the test ends.
func open(t *testing.T, srv *redistest.Server, prefix string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(ctx, redisstore.Config{Client: newClient(t, srv.URL), Prefix: prefix, Key: key})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	storetest.Run(t, storetest.Harness{
		NewBackend: func(*testing.T) string { return fmt.Sprintf("conformance-%d", n.Add(1)) },
		Open: func(t *testing.T, prefix string, key []byte, now func() time.Time) (store.Store, error) {
			s, err := redisstore.Open(ctx, redisstore.Config{Client: newClient(t, srv.URL), Prefix: prefix, Key: key, Now: now})
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return s, nil
		},
		Persistent:      true,
		Shared:          true,
		ServerLockClock: true,
		AtRest:          func(t *testing.T, prefix string) []byte { return dump(t, newClient(t, srv.URL), prefix) },
	})
}

// dump returns every key of prefix with its contents, read directly.
func dump(t *testing.T, c redis.UniversalClient, prefix string) []byte {
	t.Helper()
	var out bytes.Buffer
	iter := c.Scan(ctx, 0, "{"+prefix+"}:*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		fmt.Fprintf(&out, "%s\n", k)
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "string":
			v, err := c.Get(ctx, k).Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			out.Write(v)
		case "zset":
			zs, err := c.ZRangeWithScores(ctx, k, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, z := range zs {
				fmt.Fprintf(&out, "%v %v\n", z.Member, z.Score)
			}
		case "stream":
			msgs, err := c.XRange(ctx, k, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				fmt.Fprintf(&out, "%s %v\n", m.ID, m.Values)
			}
		case "none": // expired since SCAN listed it
		default:
			t.Fatalf("key %s has unexpected type %s", k, typ)
		}
		out.WriteByte('\n')
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// watch runs s.Watch until the test ends, and returns its events.
func watch(t *testing.T, s *redisstore.Store) <-chan store.Event {
	t.Helper()
	wctx, cancel := context.WithCancel(ctx)
	events := make(chan store.Event, 10000)
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(wctx, func(ev store.Event) {
			select {
			case events <- ev:
			default:
				t.Error("event channel full")
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	return events
}

// next returns the next event of kind (skipping others) whose At is not
// before notBefore.
func next(t *testing.T, events <-chan store.Event, kind store.EventKind, notBefore time.Time, within time.Duration) store.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-events:
			if ev.Kind == kind && !ev.At.Before(notBefore) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event of kind %d within %v", kind, within)
		}
	}
}

func TestUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, "unavailable")
	events := watch(t, s)
	next(t, events, store.EventResync, time.Time{}, 3*time.Second)
	next(t, events, store.EventSynced, time.Time{}, 3*time.Second)

	srv.Kill()
	killed := time.Now()
	e := store.Entry{
		Key:       store.Key{Group: "BOSTON", PolicyHash: "h"},
		Token:     "tok-1",
		CreatedAt: killed,
		ExpiresAt: killed.Add(time.Hour),
		RefreshAt: killed.Add(time.Minute),
	}
	ops := map[string]func() error{
		"Put":             func() error { return s.Put(ctx, e) },
		"ByToken":         func() error { _, _, err := s.ByToken(ctx, "tok-1"); return err },
		"RevokedSessions": func() error { _, err := s.RevokedSessions(ctx); return err },
		"TryLock":         func() error { _, err := s.TryLock(ctx, "mint:a", time.Minute); return err },
		"RevokeSession":   func() error { return s.RevokeSession(ctx, "s1", killed.Add(time.Hour)) },
		"Open": func() error {
			_, err := redisstore.Open(ctx, redisstore.Config{Client: newClient(t, srv.URL), Prefix: "unavailable", Key: key})
			return err
		},
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
		d := time.Since(start)
		if d > 2500*time.Millisecond {
			t.Errorf("%s took %v to fail", name, d)
		}
		t.Logf("%s failed in %v", name, d.Round(time.Millisecond))
	}

	// No read issued after the kill can succeed, so no EventSynced says so.
	quiet := time.After(1500 * time.Millisecond)
	for wait := true; wait; {
		select {
		case ev := <-events:
			if ev.Kind == store.EventSynced && ev.At.After(killed) {
				t.Fatalf("EventSynced at %v while Redis is down (killed at %v)", ev.At, killed)
			}
		case <-quiet:
			wait = false
		}
	}

	srv.Restart(t)
	restarted := time.Now()
	next(t, events, store.EventResync, time.Time{}, 5*time.Second)
	next(t, events, store.EventSynced, restarted, 3*time.Second)
	if err := s.Put(ctx, e); err != nil {
		t.Fatalf("Put after the restart: %v", err)
	}
	if got, ok, err := s.ByToken(ctx, "tok-1"); err != nil || !ok || got.Token != "tok-1" {
		t.Fatalf("ByToken after the restart: %+v %v %v", got, ok, err)
	}
}

func TestLockOwnership(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv, "locks"), open(t, srv, "locks")
	la, err := a.TryLock(ctx, "mint:x", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, "mint:x", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("b took a's lock: %v", err)
	}
	// a is "still working" while its lock expires, by Redis's clock.
	lb := storetest.AwaitLock(t, b, "mint:x", 5*time.Second)
	if err := la.Extend(ctx, time.Minute); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("a extended b's lock: %v", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("a's late Release: %v", err)
	}
	if _, err := a.TryLock(ctx, "mint:x", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("a's late Release freed b's lock: %v", err)
	}
	if err := lb.Extend(ctx, time.Minute); err != nil {
		t.Fatalf("b's Extend: %v", err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lc, err := a.TryLock(ctx, "mint:x", time.Minute)
	if err != nil {
		t.Fatalf("after b's Release: %v", err)
	}
	_ = lc.Release(ctx)
}

// TestWatchBurst: more events than one read returns all arrive before an
// EventSynced that covers them.
func TestWatchBurst(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv, "burst"), open(t, srv, "burst")
	events := watch(t, b)
	next(t, events, store.EventSynced, time.Time{}, 3*time.Second)
	const n = 350
	for i := range n {
		if err := a.Remove(ctx, fmt.Sprint("tok-", i)); err != nil {
			t.Fatal(err)
		}
	}
	done := time.Now()
	seen := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			switch {
			case ev.Kind == store.EventEvicted:
				seen[ev.TokenID] = true
			case ev.Kind == store.EventSynced && ev.At.After(done):
				if len(seen) != n {
					t.Fatalf("EventSynced at %v after %d of %d evictions", ev.At, len(seen), n)
				}
				for i := range n {
					if !seen[store.TokenID(fmt.Sprint("tok-", i))] {
						t.Fatalf("eviction %d missing", i)
					}
				}
				return
			}
		case <-deadline:
			t.Fatalf("no EventSynced after the burst; %d evictions seen", len(seen))
		}
	}
}

func TestOpenChecks(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv.URL)
	for name, opts := range map[string]redisstore.Config{
		"no client":    {Key: key},
		"short key":    {Client: c, Key: key[:16]},
		"brace prefix": {Client: c, Key: key, Prefix: "a}b"},
	} {
		if _, err := redisstore.Open(ctx, opts); err == nil {
			t.Errorf("Open with %s succeeded", name)
		}
	}
	// The default prefix is "tb", as a hash tag.
	s, err := redisstore.Open(ctx, redisstore.Config{Client: c, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := c.Exists(ctx, "{tb}:keycheck").Result(); err != nil || n != 1 {
		t.Fatalf("no key check under {tb}: %d %v", n, err)
	}
	s.Close()
	if _, _, err := s.ByToken(ctx, "x"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ByToken after Close: %v", err)
	}
}
