package tokencache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

// The goroutines run in a synctest bubble, where synctest.Wait returns once
// every one of them is blocked: on the mint (or the read) it shares, or on
// the upstream's gate.
func TestConcurrentMissesMintOnce(t *testing.T) {
	synctest.Test(t, testConcurrentMissesMintOnce)
}

func testConcurrentMissesMintOnce(t *testing.T) {
	up := &fakeUpstream{gate: make(chan struct{})}
	c := newTestCache(t, up, clocktest.New(), nil)
	const callers = 50
	var wg sync.WaitGroup
	tokens := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			e, _, err := c.Get(context.Background(), boston, 24*time.Hour)
			tokens[i], errs[i] = e.Token, err
		})
	}
	synctest.Wait() // every caller waits for the shared mint
	close(up.gate)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || tokens[i] != tokens[0] {
			t.Fatalf("caller %d got %q, %v; caller 0 got %q", i, tokens[i], errs[i], tokens[0])
		}
	}
	if n := up.mints.Load(); n != 1 {
		t.Fatalf("%d mints for %d concurrent callers, want 1", n, callers)
	}
	if _, minted, _ := c.Get(context.Background(), boston, 24*time.Hour); minted || up.mints.Load() != 1 {
		t.Fatal("a hit minted")
	}
}

// The caller that started a mint gives up; the others still get the token,
// from the same single mint.
func TestFirstCallerCancelDoesNotFailOthers(t *testing.T) {
	synctest.Test(t, testFirstCallerCancelDoesNotFailOthers)
}

func testFirstCallerCancelDoesNotFailOthers(t *testing.T) {
	up := &fakeUpstream{gate: make(chan struct{})}
	c := newTestCache(t, up, clocktest.New(), nil)
	first, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() { _, _, err := c.Get(first, boston, time.Hour); firstErr <- err }()
	synctest.Wait() // the first caller's mint waits on the upstream
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 10 {
		wg.Go(func() {
			if _, _, err := c.Get(context.Background(), boston, time.Hour); err == nil {
				ok.Add(1)
			}
		})
	}
	synctest.Wait() // the others wait for the same mint
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v, want canceled", err)
	}
	close(up.gate)
	wg.Wait()
	if ok.Load() != 10 || up.mints.Load() != 1 {
		t.Fatalf("%d of 10 waiters served, %d mints; want 10 and 1", ok.Load(), up.mints.Load())
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	up := &fakeUpstream{}
	up.fail.Store(true)
	c := newTestCache(t, up, clocktest.New(), nil)
	if _, _, err := c.Get(context.Background(), boston, time.Hour); !errors.Is(err, errUpstream) {
		t.Fatalf("err = %v, want the upstream error", err)
	}
	up.fail.Store(false)
	e, minted, err := c.Get(context.Background(), boston, time.Hour)
	if err != nil || !minted || e.Token == "" {
		t.Fatalf("after recovery: %+v, %v, %v", e, minted, err)
	}
}

// In a synctest bubble, synctest.Wait returns once the background refresh
// has ended.
func TestRefreshAheadAndSafetyMargin(t *testing.T) {
	synctest.Test(t, testRefreshAheadAndSafetyMargin)
}

func testRefreshAheadAndSafetyMargin(t *testing.T) {
	clk := clocktest.New()
	up := &fakeUpstream{}
	st := memstore.New(memstore.Config{Now: clk.Now})
	c := newTestCache(t, up, clk, st)
	ctx := context.Background()
	first, _, err := c.Get(ctx, boston, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := first.RefreshAt.Sub(first.CreatedAt); d < 10*time.Hour+48*time.Minute || d > 13*time.Hour+12*time.Minute {
		t.Fatalf("refresh after %v, want half-life ±10%%", d)
	}

	// Past the refresh point: the current token is served at once and a
	// background refresh replaces it.
	clk.Advance(14 * time.Hour)
	e, minted, err := c.Get(ctx, boston, 24*time.Hour)
	if err != nil || minted || e.Token != first.Token {
		t.Fatalf("during refresh got %q minted=%v err=%v; want the current token", e.Token, minted, err)
	}
	synctest.Wait()
	if cur, _, _ := st.Current(ctx, boston); cur.Token == first.Token {
		t.Fatal("the background refresh did not replace the token")
	}
	second, _, _ := c.Get(ctx, boston, 24*time.Hour)
	if second.Token == first.Token || up.mints.Load() != 2 {
		t.Fatalf("after refresh: %q, %d mints", second.Token, up.mints.Load())
	}
	// The replaced token is still known, so it can still be revoked.
	if _, ok, _ := st.ByToken(ctx, first.Token); !ok {
		t.Fatal("the replaced token was forgotten before it expired")
	}

	// Within the safety margin of expiry a token is never served: the caller
	// waits for a new one.
	clk.Advance(24*time.Hour - 4*time.Minute - (clk.Now().Sub(second.CreatedAt)))
	third, minted, err := c.Get(ctx, boston, 24*time.Hour)
	if err != nil || !minted || third.Token == second.Token {
		t.Fatalf("inside the safety margin got %q minted=%v err=%v", third.Token, minted, err)
	}
}

func TestRefreshFailureKeepsServing(t *testing.T) {
	synctest.Test(t, testRefreshFailureKeepsServing)
}

func testRefreshFailureKeepsServing(t *testing.T) {
	clk := clocktest.New()
	up := &fakeUpstream{}
	c := newTestCache(t, up, clk, nil)
	ctx := context.Background()
	first, _, _ := c.Get(ctx, boston, time.Hour)
	up.fail.Store(true)
	clk.Advance(40 * time.Minute)
	for range 5 {
		e, _, err := c.Get(ctx, boston, time.Hour)
		if err != nil || e.Token != first.Token {
			t.Fatalf("while refresh fails: %q, %v", e.Token, err)
		}
	}
	// One failed background attempt, then a back-off: not one per call.
	synctest.Wait() // the background attempt has ended
	c.mu.Lock()
	backoff := c.backoff[boston]
	c.mu.Unlock()
	if backoff.IsZero() {
		t.Fatal("the failed refresh set no back-off")
	}
	if n := up.mints.Load(); n != 1 {
		t.Fatalf("%d successful mints, want 1", n)
	}
}

// Callers of a group this replica has not seen (another minted it) share one
// store read: a cold burst costs the store one read per replica, not one per
// caller.
func TestConcurrentFrontMissesReadOnce(t *testing.T) {
	synctest.Test(t, testConcurrentFrontMissesReadOnce)
}

func testConcurrentFrontMissesReadOnce(t *testing.T) {
	clk := clocktest.New()
	st := memstore.New(memstore.Config{Now: clk.Now})
	up := &fakeUpstream{}
	minted, _, err := newTestCache(t, up, clk, st).Get(context.Background(), boston, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowReads{Store: st, gate: make(chan struct{})}
	other := newTestCache(t, up, clk, slow)
	const callers = 50
	var wg sync.WaitGroup
	tokens := make([]string, callers)
	for i := range callers {
		wg.Go(func() {
			e, _, err := other.Get(context.Background(), boston, time.Hour)
			if err != nil {
				t.Error(err)
			}
			tokens[i] = e.Token
		})
	}
	synctest.Wait() // every caller waits for the shared read
	close(slow.gate)
	wg.Wait()
	for i, tok := range tokens {
		if tok != minted.Token {
			t.Fatalf("caller %d got %q, want the stored %q", i, tok, minted.Token)
		}
	}
	if n := slow.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for %d concurrent callers, want 1", n, callers)
	}
	if n := up.mints.Load(); n != 1 {
		t.Fatalf("%d mints, want 1", n)
	}
}
