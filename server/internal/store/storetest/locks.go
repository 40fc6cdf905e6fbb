package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

func testLocks(t *testing.T, h Harness) {
	s := fresh(t, h)
	l1, err := s.TryLock(ctx, "mint:a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryLock(ctx, "mint:a", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second TryLock: %v, want ErrLocked", err)
	}
	lb, err := s.TryLock(ctx, "mint:b", time.Minute)
	if err != nil {
		t.Fatalf("another name: %v", err)
	}
	defer lb.Release(ctx)
	if err := l1.Extend(ctx, time.Minute); err != nil {
		t.Fatalf("Extend by the owner: %v", err)
	}
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2, err := s.TryLock(ctx, "mint:a", time.Minute)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	// The former owner can neither release nor extend the new owner's lock.
	_ = l1.Release(ctx)
	if err := l1.Extend(ctx, time.Minute); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("stale Extend: %v, want ErrLockLost", err)
	}
	if _, err := s.TryLock(ctx, "mint:a", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("a stale owner released the new owner's lock: %v", err)
	}
	_ = l2.Release(ctx)
}

// testLockExpiry: a holder that "crashed" loses its lock at expiry, and can
// then neither extend nor release the next owner's lock.
func testLockExpiry(t *testing.T, h Harness) {
	clk := clocktest.At(time.Now())
	s := openAt(t, h, h.NewBackend(t), clk.Now)
	old, err := s.TryLock(ctx, "mint:c", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var next store.Lock
	if h.ServerLockClock {
		next = AwaitLock(t, s, "mint:c", 5*time.Second)
	} else {
		clk.Advance(99 * time.Millisecond)
		if _, err := s.TryLock(ctx, "mint:c", time.Minute); !errors.Is(err, store.ErrLocked) {
			t.Fatalf("a lock 1ms before its expiry: %v, want ErrLocked", err)
		}
		clk.Advance(151 * time.Millisecond)
		if next, err = s.TryLock(ctx, "mint:c", time.Minute); err != nil {
			t.Fatalf("an expired lock still blocks: %v", err)
		}
	}
	if err := old.Extend(ctx, time.Minute); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("Extend of an expired lock: %v, want ErrLockLost", err)
	}
	_ = old.Release(ctx)
	if _, err := s.TryLock(ctx, "mint:c", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("a slow former owner released the lock: %v", err)
	}
	_ = next.Release(ctx)
}

// AwaitLock takes the lock name of s (for a minute) once the lock another
// owner holds lapses, and fails t if that takes longer than within. It is
// for stores whose locks expire by a server's clock (Redis), which a test
// cannot move: it tries again every few milliseconds, watching the lock's
// state rather than sleeping for a guessed time.
func AwaitLock(t testing.TB, s store.Store, name string, within time.Duration) store.Lock {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		l, err := s.TryLock(ctx, name, time.Minute)
		switch {
		case err == nil:
			return l
		case !errors.Is(err, store.ErrLocked):
			t.Fatalf("TryLock %s: %v", name, err)
		case time.Now().After(deadline):
			t.Fatalf("the lock %s was still held after %v: an expired lock still blocks", name, within)
		}
		<-tick.C
	}
}
