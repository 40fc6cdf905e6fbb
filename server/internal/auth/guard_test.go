package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

// windowCounter is a Counter in memory.
type windowCounter struct {
	mu sync.Mutex
	m  map[string]int64
}

func (w *windowCounter) Count(_ context.Context, name string, at time.Time, window time.Duration, delta int64) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := fmt.Sprint(name, at.Truncate(window).Unix())
	w.m[k] += delta
	return w.m[k], nil
}

func TestGuard(t *testing.T) {
	var err error
	clock := clocktest.At(time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC))
	g := NewGuard(GuardConfig{Counter: &windowCounter{m: map[string]int64{}}, MaxUserFailures: 20, MaxAddrFailures: 100, Now: clock.Now})
	ctx := context.Background()
	// A reserved attempt that is not released counts as a failure.
	fail := func(user, addr string, n int) {
		for range n {
			if _, err := g.Reserve(ctx, user, addr); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(user, addr string) error {
		a, err := g.Reserve(ctx, user, addr)
		if err == nil {
			err = a.Release(ctx)
		}
		return err
	}
	// 19 failures, from rotating addresses: still allowed.
	for i := range 19 {
		fail("user.boston@acme.com", fmt.Sprintf("10.0.0.%d:5000", i), 1)
	}
	if err := check("USER.boston@acme.com ", "10.9.9.9:1"); err != nil {
		t.Fatalf("after 19 failures: %v", err)
	}
	fail("user.boston@acme.com", "10.0.0.99:1", 1)
	err = check("user.boston@acme.com", "192.168.1.1:1")
	var lock *LockoutError
	if !errors.As(err, &lock) || !errors.Is(err, ErrTooManyAttempts) || lock.RetryAfter != 14*time.Minute {
		t.Fatalf("after 20 failures from any address: %v, want a lockout of 14m", err)
	}
	// Unknown usernames are locked out alike: a lockout reveals nothing.
	fail("nobody@acme.com", "10.1.1.1:1", 20)
	if err := check("nobody@acme.com", "10.2.2.2:1"); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("unknown user: %v", err)
	}
	// One address trying many usernames.
	for i := range 100 {
		fail(fmt.Sprintf("u%d@acme.com", i), "[2001:db8::1]:443", 1)
	}
	if err := check("fresh@acme.com", "[2001:db8::ffff]:80"); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("an address of the same /64: %v", err)
	}
	if err := check("fresh@acme.com", "[2001:db9::1]:80"); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	// The lockout ends with the window.
	clock.Advance(15 * time.Minute)
	if err := check("user.boston@acme.com", "10.0.0.1:1"); err != nil {
		t.Fatalf("next window: %v", err)
	}
	// Success clears the username's failures.
	fail("user.ny@acme.com", "10.3.3.3:1", 19)
	a, err := g.Reserve(ctx, "user.ny@acme.com", "10.3.3.3:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Succeeded(ctx); err != nil {
		t.Fatal(err)
	}
	fail("user.ny@acme.com", "10.3.3.3:1", 19)
	if err := check("user.ny@acme.com", "10.4.4.4:1"); err != nil {
		t.Fatalf("after a success reset: %v", err)
	}
}
