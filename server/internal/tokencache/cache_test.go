package tokencache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

// clock is a settable clock for tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// fakeUpstream mints numbered tokens. gate, when set, holds every mint until
// closed; fail makes mints fail.
type fakeUpstream struct {
	mints, deletes atomic.Int64
	gate           chan struct{}
	fail           atomic.Bool
	failDelete     atomic.Bool
	mu             sync.Mutex
	deleted        []string
}

var errUpstream = errors.New("upstream down")

func (f *fakeUpstream) Mint(ctx context.Context, key store.Key, _ time.Time) (string, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if f.fail.Load() {
		return "", errUpstream
	}
	return fmt.Sprintf("%s-token-%d", key.Group, f.mints.Add(1)), nil
}

func (f *fakeUpstream) Delete(_ context.Context, token string) error {
	if f.failDelete.Load() {
		return errUpstream
	}
	f.deletes.Add(1)
	f.mu.Lock()
	f.deleted = append(f.deleted, token)
	f.mu.Unlock()
	return nil
}

// failingStore fails every Put.
type failingStore struct{ *memstore.Store }

func (failingStore) Put(context.Context, store.Entry) error { return errors.New("disk full") }

var boston = store.Key{Group: "BOSTON", PolicyHash: "0123456789abcdef0123456789abcdef"}

func newTestCache(t *testing.T, up *fakeUpstream, clk *clock, st store.Store) *Cache {
	t.Helper()
	if st == nil {
		st = memstore.New(memstore.Config{Now: clk.Now})
	}
	c := New(Config{Store: st, Upstream: up, Now: clk.Now})
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConcurrentMissesMintOnce(t *testing.T) {
	up := &fakeUpstream{gate: make(chan struct{})}
	c := newTestCache(t, up, newClock(), nil)
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
	time.Sleep(20 * time.Millisecond) // let every caller reach the shared mint
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
	up := &fakeUpstream{gate: make(chan struct{})}
	c := newTestCache(t, up, newClock(), nil)
	first, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() { _, _, err := c.Get(first, boston, time.Hour); firstErr <- err }()
	time.Sleep(10 * time.Millisecond)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 10 {
		wg.Go(func() {
			if _, _, err := c.Get(context.Background(), boston, time.Hour); err == nil {
				ok.Add(1)
			}
		})
	}
	time.Sleep(10 * time.Millisecond)
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
	c := newTestCache(t, up, newClock(), nil)
	if _, _, err := c.Get(context.Background(), boston, time.Hour); !errors.Is(err, errUpstream) {
		t.Fatalf("err = %v, want the upstream error", err)
	}
	up.fail.Store(false)
	e, minted, err := c.Get(context.Background(), boston, time.Hour)
	if err != nil || !minted || e.Token == "" {
		t.Fatalf("after recovery: %+v, %v, %v", e, minted, err)
	}
}

func TestRefreshAheadAndSafetyMargin(t *testing.T) {
	clk := newClock()
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
	waitFor(t, func() bool { cur, _, _ := st.Current(ctx, boston); return cur.Token != first.Token })
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
	clk := newClock()
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
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return !c.backoff[boston].IsZero() })
	if n := up.mints.Load(); n != 1 {
		t.Fatalf("%d successful mints, want 1", n)
	}
}

func TestRevoke(t *testing.T) {
	up := &fakeUpstream{}
	clk := newClock()
	st := memstore.New(memstore.Config{Now: clk.Now})
	c := newTestCache(t, up, clk, st)
	ctx := context.Background()
	b, _, _ := c.Get(ctx, boston, time.Hour)
	ny, _, _ := c.Get(ctx, store.Key{Group: "NEW YORK", PolicyHash: boston.PolicyHash}, time.Hour)

	for name, tc := range map[string]struct{ group, token string }{
		"another group's token": {"BOSTON", ny.Token},
		"unknown token":         {"BOSTON", "no-such-token"},
	} {
		if _, err := c.Revoke(ctx, tc.token, only(tc.group)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
	if up.deletes.Load() != 0 {
		t.Fatal("a refused revocation deleted something upstream")
	}

	up.failDelete.Store(true)
	if _, err := c.Revoke(ctx, b.Token, only("BOSTON")); !errors.Is(err, errUpstream) {
		t.Fatalf("upstream failure: err = %v", err)
	}
	if cur, _, _ := c.Get(ctx, boston, time.Hour); cur.Token != b.Token {
		t.Fatal("a token whose upstream delete failed is no longer served")
	}
	up.failDelete.Store(false)
	if _, err := c.Revoke(ctx, b.Token, only("BOSTON")); err != nil {
		t.Fatal(err)
	}
	next, minted, _ := c.Get(ctx, boston, time.Hour)
	if !minted || next.Token == b.Token {
		t.Fatalf("after revoke got %q minted=%v", next.Token, minted)
	}
	if _, err := c.Revoke(ctx, b.Token, only("BOSTON")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
}

func TestUnstorableTokenIsDeleted(t *testing.T) {
	up := &fakeUpstream{}
	clk := newClock()
	c := newTestCache(t, up, clk, failingStore{memstore.New(memstore.Config{Now: clk.Now})})
	if _, _, err := c.Get(context.Background(), boston, time.Hour); err == nil {
		t.Fatal("no error when the store fails")
	}
	if up.mints.Load() != 1 || up.deletes.Load() != 1 {
		t.Fatalf("%d minted, %d deleted: the unstored token must be deleted upstream", up.mints.Load(), up.deletes.Load())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Two replicas sharing one store (here one Memory, as if it were Redis)
// mint once between them: the store's lock decides who mints, the other
// waits for the result.
func TestReplicasShareOneMint(t *testing.T) {
	clk := newClock()
	st := memstore.New(memstore.Config{Now: clk.Now})
	up := &fakeUpstream{gate: make(chan struct{})}
	a, b := newTestCache(t, up, clk, st), newTestCache(t, up, clk, st)
	for _, c := range []*Cache{a, b} {
		c.cfg.WaitPoll = time.Millisecond
	}
	var wg sync.WaitGroup
	tokens := make([]string, 20)
	for i := range 20 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			e, _, err := c.Get(context.Background(), boston, time.Hour)
			if err != nil {
				t.Error(err)
			}
			tokens[i] = e.Token
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(up.gate)
	wg.Wait()
	for i := range tokens {
		if tokens[i] != tokens[0] {
			t.Fatalf("replicas disagree: %q vs %q", tokens[i], tokens[0])
		}
	}
	if n := up.mints.Load(); n != 1 {
		t.Fatalf("%d mints across two replicas, want 1", n)
	}
}

// A mint slower than the lock's lifetime keeps its lock (it is renewed), so
// the other replica does not mint a second token.
func TestSlowMintKeepsItsLock(t *testing.T) {
	st := memstore.New(memstore.Config{})
	up := &fakeUpstream{gate: make(chan struct{})}
	mk := func() *Cache {
		c := New(Config{Store: st, Upstream: up, LockTTL: 60 * time.Millisecond, WaitPoll: 5 * time.Millisecond})
		return c
	}
	a, b := mk(), mk()
	first := make(chan error, 1)
	go func() { _, _, err := a.Get(context.Background(), boston, time.Hour); first <- err }()
	time.Sleep(20 * time.Millisecond) // a holds the lock and waits on CARTO
	second := make(chan error, 1)
	go func() { _, _, err := b.Get(context.Background(), boston, time.Hour); second <- err }()
	time.Sleep(300 * time.Millisecond) // five lock lifetimes
	close(up.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if n := up.mints.Load(); n != 1 {
		t.Fatalf("%d mints: the slow holder lost its lock", n)
	}
}

// A holder that died with the lock blocks the others only until the lock
// expires; then one of them mints.
func TestDeadHolderLockExpires(t *testing.T) {
	st := memstore.New(memstore.Config{})
	up := &fakeUpstream{}
	if _, err := st.TryLock(context.Background(), "mint:"+store.TokenID(boston.String())[:32], 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c := New(Config{Store: st, Upstream: up, WaitPoll: 5 * time.Millisecond})
	e, minted, err := c.Get(context.Background(), boston, time.Hour)
	if err != nil || !minted || e.Token == "" || up.mints.Load() != 1 {
		t.Fatalf("after the dead holder's lock expired: %+v %v %v, %d mints", e, minted, err, up.mints.Load())
	}
}

func TestQuotaGuards(t *testing.T) {
	clk := newClock()
	key := func(g string) store.Key { return store.Key{Group: g, PolicyHash: boston.PolicyHash} }
	t.Run("live tokens", func(t *testing.T) {
		up := &fakeUpstream{}
		c := New(Config{Store: memstore.New(memstore.Config{Now: clk.Now}), Upstream: up, Now: clk.Now, MaxLiveTokens: 2})
		for _, g := range []string{"A", "B"} {
			if _, _, err := c.Get(context.Background(), key(g), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := c.Get(context.Background(), key("C"), time.Hour)
		if !errors.Is(err, ErrQuotaExceeded) || !strings.Contains(err.Error(), "limit of 2 live CARTO tokens") {
			t.Fatalf("third key: %v", err)
		}
		if e, _, err := c.Get(context.Background(), key("A"), time.Hour); err != nil || e.Token == "" {
			t.Fatalf("an existing token is no longer served: %v", err)
		}
		if up.mints.Load() != 2 {
			t.Fatalf("%d mints", up.mints.Load())
		}
	})
	t.Run("creations per window", func(t *testing.T) {
		up := &fakeUpstream{}
		c := New(Config{Store: memstore.New(memstore.Config{Now: clk.Now}), Upstream: up, Now: clk.Now, MaxMints: 2, MintWindow: time.Hour})
		for _, g := range []string{"A", "B"} {
			if _, _, err := c.Get(context.Background(), key(g), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := c.Get(context.Background(), key("C"), time.Hour)
		if !errors.Is(err, ErrQuotaExceeded) || !strings.Contains(err.Error(), "2 CARTO token creations per 1h0m0s") || !strings.Contains(err.Error(), "retry in") {
			t.Fatalf("third creation: %v", err)
		}
		clk.Advance(time.Hour)
		if _, _, err := c.Get(context.Background(), key("C"), 2*time.Hour); err != nil {
			t.Fatalf("next window: %v", err)
		}
	})
}

// watchedMemory is a Memory that claims to be shared: the test feeds its
// events by hand.
type watchedMemory struct {
	*memstore.Store
	failReads atomic.Bool
}

func (w *watchedMemory) Watch(ctx context.Context, _ func(store.Event)) error {
	<-ctx.Done()
	return ctx.Err()
}

func (w *watchedMemory) RevokedSessions(ctx context.Context) (map[string]time.Time, error) {
	if w.failReads.Load() {
		return nil, fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	}
	return w.Store.RevokedSessions(ctx)
}

func TestSharedStoreFailsClosed(t *testing.T) {
	clk := newClock()
	st := &watchedMemory{Store: memstore.New(memstore.Config{Now: clk.Now})}
	up := &fakeUpstream{}
	c := New(Config{Store: st, Upstream: up, Now: clk.Now, MaxStaleness: 2 * time.Second})
	ctx := context.Background()
	stale := func(what string) {
		t.Helper()
		if _, err := c.SessionRevoked(ctx, "s1"); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: SessionRevoked = %v, want ErrUnavailable", what, err)
		}
		if _, _, err := c.Get(ctx, boston, time.Hour); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: Get = %v, want ErrUnavailable", what, err)
		}
	}
	stale("before any news")

	_ = st.Store.RevokeSession(ctx, "s1", clk.Now().Add(time.Hour)) // made by another replica
	c.apply(store.Event{Kind: store.EventResync})
	c.apply(store.Event{Kind: store.EventSynced, At: clk.Now()})
	if r, err := c.SessionRevoked(ctx, "s1"); err != nil || !r {
		t.Fatalf("after resync: %v, %v; want revoked", r, err)
	}
	e, _, err := c.Get(ctx, boston, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// Another replica revokes and evicts: the events reach this one.
	c.apply(store.Event{Kind: store.EventSessionRevoked, SessionID: "s2", Until: clk.Now().Add(time.Hour)})
	if r, _ := c.SessionRevoked(ctx, "s2"); !r {
		t.Fatal("a revocation event was not applied")
	}
	_ = st.Store.Remove(ctx, e.Token)
	c.apply(store.Event{Kind: store.EventEvicted, TokenID: store.TokenID(e.Token)})
	if e2, minted, _ := c.Get(ctx, boston, time.Hour); !minted || e2.Token == e.Token {
		t.Fatal("an evicted token is still served from the front cache")
	}

	clk.Advance(3 * time.Second)
	stale("no news for 3s")

	// A reconnect whose resync fails leaves the views untrusted, even when
	// news arrives; the next success restores them.
	st.failReads.Store(true)
	c.apply(store.Event{Kind: store.EventResync})
	c.apply(store.Event{Kind: store.EventSynced, At: clk.Now()})
	stale("after a failed resync")
	st.failReads.Store(false)
	c.apply(store.Event{Kind: store.EventSynced, At: clk.Now()})
	if _, err := c.SessionRevoked(ctx, "s1"); err != nil {
		t.Fatalf("after a successful resync: %v", err)
	}
}

// A store that lost its data (Redis restarted without persistence) does not
// make a replica forget a revocation it had seen: the replica keeps it and
// writes it back.
func TestResyncKeepsAndRestoresRevocations(t *testing.T) {
	clk := newClock()
	st := &watchedMemory{Store: memstore.New(memstore.Config{Now: clk.Now})}
	c := New(Config{Store: st, Upstream: &fakeUpstream{}, Now: clk.Now})
	ctx := context.Background()
	c.apply(store.Event{Kind: store.EventResync})
	c.apply(store.Event{Kind: store.EventSynced, At: clk.Now()})
	if err := c.RevokeSession(ctx, "s1", clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st.Store = memstore.New(memstore.Config{Now: clk.Now}) // the store comes back empty
	c.apply(store.Event{Kind: store.EventResync})
	c.apply(store.Event{Kind: store.EventSynced, At: clk.Now()})
	if r, err := c.SessionRevoked(ctx, "s1"); err != nil || !r {
		t.Fatalf("after the store lost its data: revoked=%v, %v", r, err)
	}
	if got, _ := st.RevokedSessions(ctx); got["s1"].IsZero() {
		t.Fatal("the lost revocation was not written back to the store")
	}
}

// only allows revoking the tokens of one group.
func only(group string) Revoker { return Revoker{May: func(g string) bool { return g == group }} }

// slowReads counts Current calls and holds them until gate closes.
type slowReads struct {
	store.Store
	reads atomic.Int64
	gate  chan struct{}
}

func (s *slowReads) Current(ctx context.Context, key store.Key) (store.Entry, bool, error) {
	s.reads.Add(1)
	<-s.gate
	return s.Store.Current(ctx, key)
}

// Callers of a group this replica has not seen (another minted it) share one
// store read: a cold burst costs the store one read per replica, not one per
// caller.
func TestConcurrentFrontMissesReadOnce(t *testing.T) {
	clk := newClock()
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
	time.Sleep(20 * time.Millisecond) // let every caller reach the read
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
