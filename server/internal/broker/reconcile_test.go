package broker

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// listingCarto lists a fixed set of tokens and records deletions.
type listingCarto struct {
	mu      sync.Mutex
	tokens  []carto.APIToken
	deleted []string
	lists   int // ListTokens calls: one per reconciliation pass
}

func (l *listingCarto) ListTokens(context.Context) ([]carto.APIToken, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
	return slices.Clone(l.tokens), nil
}

func (l *listingCarto) passes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lists
}

func (l *listingCarto) DeleteToken(_ context.Context, tok string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deleted = append(l.deleted, tok)
	l.tokens = slices.DeleteFunc(l.tokens, func(t carto.APIToken) bool { return t.Token == tok })
	return nil
}

func (l *listingCarto) CreateToken(context.Context, carto.CreateTokenRequest) (carto.APIToken, error) {
	panic("not used")
}

func (l *listingCarto) wasDeleted(tok string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.deleted, tok)
}

func TestReconcile(t *testing.T) {
	clk := clocktest.New()
	now, clock := clk.Now(), clk.Now
	boston := policy.Reference()
	boston.AllowedAPIs = []string{"maps", "sql"}
	pols, err := policy.NewSet(policy.SetConfig{Groups: map[string]policy.Template{"BOSTON": boston}}) // no default: other groups have none
	if err != nil {
		t.Fatal(err)
	}
	current, _ := pols.For("BOSTON")
	ctx := context.Background()
	mem := memstore.New(memstore.Config{Now: clock})
	put := func(group, hash, tok string) {
		_ = mem.Put(ctx, store.Entry{Key: store.Key{Group: group, PolicyHash: hash}, Token: tok, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)})
	}
	put("BOSTON", current.Hash, "tok-current")
	put("BOSTON", "0ld0ld0ld0ld0ld0ld", "tok-old-policy")
	put("CHICAGO", current.Hash, "tok-no-policy")

	prefix := TokenNamePrefix("prod")
	lister := &listingCarto{tokens: []carto.APIToken{
		{Token: "tok-current", Name: prefix + "BOSTON/x", CreatedAt: now.Add(-time.Hour)},
		{Token: "tok-orphan-old", Name: prefix + "BOSTON/x", CreatedAt: now.Add(-10 * time.Minute)},
		{Token: "tok-orphan-new", Name: prefix + "BOSTON/x", CreatedAt: now.Add(-time.Minute)},
		{Token: "tok-orphan-undated", Name: prefix + "BOSTON/x"},
		{Token: "tok-other-deployment", Name: TokenNamePrefix("staging") + "BOSTON/x", CreatedAt: now.Add(-time.Hour)},
		{Token: "tok-someone-elses", Name: "my dashboard", CreatedAt: now.Add(-time.Hour)},
		{Token: "tok-orphan-expired", Name: prefix + "BOSTON/x", CreatedAt: now.Add(-48 * time.Hour), ExpiresAt: now.Add(-24 * time.Hour)},
	}}
	up := Upstream{Carto: lister, Policies: pols, NamePrefix: prefix}
	cache := tokencache.New(tokencache.Config{Store: mem, Upstream: up, Now: clock})
	r := NewReconciler(ReconcilerConfig{Cache: cache, Store: mem, Policies: pols, Carto: lister, Upstream: up, NamePrefix: prefix, Now: clock})

	rep, err := r.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replaced != 2 || rep.Orphans != 1 || rep.Failed != 0 {
		t.Fatalf("first pass: %+v, want 2 replaced, 1 orphan", rep)
	}
	for tok, want := range map[string]bool{
		"tok-current": false, "tok-old-policy": true, "tok-no-policy": true, "tok-orphan-old": true,
		"tok-orphan-new": false, "tok-orphan-undated": false, "tok-other-deployment": false,
		"tok-someone-elses": false, "tok-orphan-expired": false,
	} {
		if lister.wasDeleted(tok) != want {
			t.Errorf("%s deleted = %v, want %v", tok, !want, want)
		}
	}
	if _, ok, _ := mem.ByToken(ctx, "tok-old-policy"); ok {
		t.Fatal("the replaced policy's token is still in the store")
	}
	if e, ok, _ := mem.Current(ctx, store.Key{Group: "BOSTON", PolicyHash: current.Hash}); !ok || e.Token != "tok-current" {
		t.Fatal("the current token was touched")
	}

	// Later: the young orphan is past the grace period, and the undated one
	// is still unknown at a second pass.
	clk.Advance(10 * time.Minute)
	rep, err = r.Once(ctx)
	if err != nil || rep.Orphans != 2 || !lister.wasDeleted("tok-orphan-new") || !lister.wasDeleted("tok-orphan-undated") {
		t.Fatalf("second pass: %+v, %v", rep, err)
	}

	// Another replica reconciling: this one skips.
	l, _ := mem.TryLock(ctx, "reconcile", time.Minute)
	defer l.Release(ctx)
	if rep, err := r.Once(ctx); err != nil || !rep.Skipped {
		t.Fatalf("while locked: %+v, %v", rep, err)
	}
}

// Run makes a pass at once, then one every Interval, and returns when its
// context ends. It runs in a synctest bubble: the intervals pass on the
// bubble's fake clock.
func TestReconcilerRunsEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pols, err := policy.NewSet(policy.SetConfig{Default: new(policy.Reference())})
		if err != nil {
			t.Fatal(err)
		}
		mem := memstore.New(memstore.Config{})
		lister := &listingCarto{}
		up := Upstream{Carto: lister, Policies: pols, NamePrefix: TokenNamePrefix("prod")}
		cache := tokencache.New(tokencache.Config{Store: mem, Upstream: up})
		r := NewReconciler(ReconcilerConfig{Cache: cache, Store: mem, Policies: pols, Carto: lister, Upstream: up, NamePrefix: up.NamePrefix, Interval: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()

		synctest.Wait()
		if got := lister.passes(); got != 1 {
			t.Fatalf("%d passes at start, want 1", got)
		}
		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		if got := lister.passes(); got != 1 {
			t.Fatalf("%d passes before the interval, want 1", got)
		}
		time.Sleep(time.Nanosecond + 2*time.Minute)
		synctest.Wait()
		if got := lister.passes(); got != 4 {
			t.Fatalf("%d passes after 3 intervals, want 4 (one at start, one each)", got)
		}
		cancel()
		<-done // Run returns once its context ends
	})
}
