package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/storetest"
)

// Finding 1: concurrent guesses must not outrun the lockout, per username and
// per address, on any store, across replicas.
func TestAttackConcurrentReservationsOutrunLockout(t *testing.T) {
	const limit, attackers = 5, 200
	for name, counters := range storetest.Replicas(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clock := clocktest.At(time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC))
			var guards [2]*auth.Guard
			for i, c := range counters {
				guards[i] = auth.NewGuard(auth.GuardConfig{Counter: c, MaxUserFailures: limit, MaxAddrFailures: 2 * limit, Now: clock.Now})
			}
			reserveAll := func(n int, user func(i int) string, addr func(i int) string) int {
				return reserveAtOnce(t, guards, n, user, addr)
			}

			// One username, from as many addresses as attackers.
			got := reserveAll(attackers, func(int) string { return "victim@acme.com" },
				func(i int) string { return fmt.Sprintf("10.%d.%d.1:4000", i/250, i%250) })
			if got != limit {
				t.Fatalf("%d concurrent guesses of one username: %d reached the password check, want %d", attackers, got, limit)
			}
			// The owner too is refused until the window ends, on both replicas.
			for _, g := range guards {
				if _, err := g.Reserve(ctx, "victim@acme.com", "192.0.2.1:1"); !errors.Is(err, auth.ErrTooManyAttempts) {
					t.Fatalf("the owner during the lockout: %v, want a lockout", err)
				}
			}
			// Other users are unaffected.
			a, err := guards[1].Reserve(ctx, "other@acme.com", "192.0.2.1:1")
			if err != nil {
				t.Fatalf("another user: %v", err)
			}
			if err := a.Succeeded(ctx); err != nil {
				t.Fatal(err)
			}

			// One address, as many usernames as attackers.
			got = reserveAll(attackers, func(i int) string { return fmt.Sprintf("u%d@acme.com", i) },
				func(int) string { return "[2001:db8::7]:443" })
			if got != 2*limit {
				t.Fatalf("%d concurrent guesses from one address: %d reached the password check, want %d", attackers, got, 2*limit)
			}
			if _, err := guards[0].Reserve(ctx, "fresh@acme.com", "[2001:db8::8]:1"); !errors.Is(err, auth.ErrTooManyAttempts) {
				t.Fatalf("the same /64 during its lockout: %v", err)
			}
			if _, err := guards[0].Reserve(ctx, "fresh@acme.com", "198.51.100.1:1"); err != nil {
				t.Fatalf("another address: %v", err)
			}

			// The window ends: the owner gets in.
			clock.Advance(15 * time.Minute)
			a, err = guards[0].Reserve(ctx, "victim@acme.com", "192.0.2.1:1")
			if err != nil {
				t.Fatalf("the owner after the window: %v", err)
			}
			if err := a.Succeeded(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// reserveAtOnce sends n reservations at once, alternating the guards (two
// replicas), and returns the attempts that got through: each would check a
// password. None is released: each counts as a failure.
func reserveAtOnce(t *testing.T, guards [2]*auth.Guard, n int, user func(i int) string, addr func(i int) string) int {
	var wg sync.WaitGroup
	var got atomic.Int64
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			_, err := guards[i%2].Reserve(context.Background(), user(i), addr(i))
			switch {
			case err == nil:
				got.Add(1)
			case !errors.Is(err, auth.ErrTooManyAttempts):
				t.Errorf("reserve: %v", err)
			}
		})
	}
	close(gate)
	wg.Wait()
	return int(got.Load())
}

// Finding 1: a refused attempt extends nothing, and an attempt whose password
// was never checked counts as nothing.
func TestAttackRefusedAttemptsExtendNothing(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC)
	store := memstore.New(memstore.Config{})
	g := auth.NewGuard(auth.GuardConfig{Counter: store, MaxUserFailures: 3, MaxAddrFailures: 100, Now: func() time.Time { return now }})
	for range 3 {
		if _, err := g.Reserve(ctx, "u", "10.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 { // refused: neither counter moves
		if _, err := g.Reserve(ctx, "u", "10.0.0.1:1"); !errors.Is(err, auth.ErrTooManyAttempts) {
			t.Fatalf("over the limit: %v", err)
		}
	}
	if n, _ := store.Count(ctx, "login-addr:10.0.0.1", now, 15*time.Minute, 0); n != 3 {
		t.Fatalf("address counter %d after 3 failures and 50 refusals, want 3", n)
	}
	// Released attempts (never checked) leave no trace.
	for range 10 {
		a, err := g.Reserve(ctx, "w", "10.0.0.2:1")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := store.Count(ctx, "login-addr:10.0.0.2", now, 15*time.Minute, 0); n != 0 {
		t.Fatalf("address counter %d after 10 released attempts, want 0", n)
	}
}

// Finding 2: a flood of logins from one address is shed at once beyond its
// share, never queues without bound, and a login from another address is
// admitted.
func TestAttackLoginFloodFillsQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { loginFloodFillsQueue(t) })
}

func loginFloodFillsQueue(t *testing.T) {
	ctx := context.Background()
	l := auth.NewLoginLimiter(auth.LoginLimiterConfig{Slots: 1, MaxQueue: 3, QueueTimeout: time.Hour, MaxPerAddr: 2})
	hold, err := l.Admit(ctx, "192.0.2.9:1") // the only slot is busy
	if err != nil {
		t.Fatal(err)
	}
	const flood = 400
	type result struct {
		release func()
		err     error
	}
	results := make(chan result, flood)
	for i := range flood {
		go func() {
			release, err := l.Admit(ctx, fmt.Sprintf("10.0.0.1:%d", 1000+i))
			results <- result{release, err}
		}()
	}
	// Every flood login beyond the address's 2 is answered at once: the
	// 2 admitted ones wait for the busy slot.
	for range flood - 2 {
		r := <-results
		var busy *auth.BusyError
		if !errors.As(r.err, &busy) || !errors.Is(r.err, auth.ErrBusy) || busy.RetryAfter <= 0 {
			t.Fatalf("a flood login beyond the address's share: %v, want ErrBusy with a retry hint", r.err)
		}
	}
	// Another address still gets a place in the queue, and its turn.
	legit := make(chan error, 1)
	go func() {
		release, err := l.Admit(ctx, "198.51.100.7:1")
		if err == nil {
			release()
		}
		legit <- err
	}()
	synctest.Wait() // every waiter is parked on the slots
	if n, _ := l.Waiting(); n != 3 {
		t.Fatalf("%d logins waiting, want the address's 2 and the other address's 1", n)
	}
	hold()
	for range 2 { // the address's 2 get their turns, in order
		r := <-results
		if r.err != nil {
			t.Fatalf("a flood login within the address's share: %v", r.err)
		}
		r.release()
	}
	if err := <-legit; err != nil {
		t.Fatalf("a login from another address during the flood: %v", err)
	}
	if _, peak := l.Waiting(); peak > 3 {
		t.Fatalf("%d logins waited at once, the bound is 3", peak)
	}
}

// Finding 2: a full queue sheds at once, and a wait ends at its deadline
// (or the caller's), leaving no place taken.
func TestAttackLoginQueueBoundAndDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { loginQueueBoundAndDeadline(t) })
}

func loginQueueBoundAndDeadline(t *testing.T) {
	ctx := context.Background()
	expire := make(chan time.Time)
	l := auth.NewLoginLimiter(auth.LoginLimiterConfig{Slots: 1, MaxQueue: 1, QueueTimeout: 2 * time.Second,
		After: func(d time.Duration) <-chan time.Time {
			if d != 2*time.Second {
				t.Errorf("wait deadline %s, want the QueueTimeout", d)
			}
			return expire
		}})
	hold, err := l.Admit(ctx, "10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	waited := make(chan error, 1)
	go func() {
		_, err := l.Admit(ctx, "10.0.0.2:1")
		waited <- err
	}()
	synctest.Wait() // the waiter is parked on the slot
	if n, _ := l.Waiting(); n != 1 {
		t.Fatalf("%d logins waiting, want 1", n)
	}
	if _, err := l.Admit(ctx, "10.0.0.3:1"); !errors.Is(err, auth.ErrBusy) {
		t.Fatalf("with the queue full: %v, want ErrBusy at once", err)
	}
	expire <- time.Time{} // the deadline passes
	if err := <-waited; !errors.Is(err, auth.ErrBusy) {
		t.Fatalf("at the deadline: %v, want ErrBusy", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := l.Admit(cctx, "10.0.0.2:1")
		waited <- err
	}()
	synctest.Wait()
	if n, _ := l.Waiting(); n != 1 {
		t.Fatalf("%d logins waiting, want 1", n)
	}
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller gone: %v", err)
	}
	if n, _ := l.Waiting(); n != 0 {
		t.Fatalf("%d waiting after every waiter left", n)
	}
}

// Also fix: bcrypt compares only a password's first 72 bytes, so a longer
// one must never be accepted on its prefix.
func TestAttackPasswordBeyond72Bytes(t *testing.T) {
	pw := bytes.Repeat([]byte("p"), auth.MaxPasswordLen)
	hash, err := auth.HashPassword(string(pw), auth.MinBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.NewUsers([]auth.User{{Username: "u", PasswordHash: hash, Group: "G"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := users.Authenticate(context.Background(), "u", string(pw)); err != nil {
		t.Fatalf("the 72-byte password: %v", err)
	}
	if _, err := users.Authenticate(context.Background(), "u", string(pw)+"anything"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("the password plus a suffix: %v, want refused", err)
	}
	if _, err := auth.HashPassword(string(pw)+"x", auth.MinBcryptCost); err == nil {
		t.Fatal("a 73-byte password was hashed")
	}
}
