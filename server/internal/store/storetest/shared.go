package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// testShared: two stores on one backend see each other's writes, locks and
// counts, and b's feed reports a's evictions and revocations.
func testShared(t *testing.T, h Harness) {
	backend := h.NewBackend(t)
	a, b := open(t, h, backend), open(t, h, backend)
	w, ok := b.(store.Watcher)
	if !ok {
		t.Fatal("a shared store does not implement store.Watcher")
	}
	next := watch(t, w)
	next(store.EventResync)
	synced := next(store.EventSynced)
	if time.Since(synced.At) > 2*time.Second {
		t.Fatalf("EventSynced reports %v, long ago", synced.At)
	}

	e := entry("BOSTON", "h", "tok-shared", time.Hour)
	mustPut(t, a, e)
	wantCurrent(t, b, e.Key, &e)

	start := time.Now()
	if err := a.Remove(ctx, e.Token); err != nil {
		t.Fatal(err)
	}
	if ev := next(store.EventEvicted); ev.TokenID != store.TokenID(e.Token) {
		t.Fatalf("evicted %q, want %q", ev.TokenID, store.TokenID(e.Token))
	}
	until := now().Add(time.Hour)
	if err := a.RevokeSession(ctx, "s-shared", until); err != nil {
		t.Fatal(err)
	}
	ev := next(store.EventSessionRevoked)
	if ev.SessionID != "s-shared" || ev.Until.UnixMilli() != until.UnixMilli() {
		t.Fatalf("session event %+v", ev)
	}
	t.Logf("eviction and revocation reached the other store in %v", time.Since(start))

	la, err := a.TryLock(ctx, "mint:shared", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, "mint:shared", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("the lock is not shared: %v", err)
	}
	_ = la.Release(ctx)
	if n, _ := b.Count(ctx, "creations", start, time.Hour, 1); n != 1 {
		t.Fatal("first count on b is not 1")
	}
	if n, _ := a.Count(ctx, "creations", start, time.Hour, 1); n != 2 {
		t.Fatalf("counts are not shared: a sees %d after b's 1", n)
	}
}

// watch follows w's feed until the test ends, and returns a function that
// waits (3 s at most) for the next event of a kind, skipping others.
func watch(t *testing.T, w store.Watcher) (next func(store.EventKind) store.Event) {
	wctx, cancel := context.WithCancel(ctx)
	events := make(chan store.Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(wctx, func(ev store.Event) {
			select {
			case events <- ev:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v", err)
		}
	})
	return func(kind store.EventKind) store.Event {
		t.Helper()
		deadline := time.After(3 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Kind == kind {
					return ev
				}
			case <-deadline:
				t.Fatalf("no event of kind %d within 3s", kind)
			}
		}
	}
}
