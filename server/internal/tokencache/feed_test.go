package tokencache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

func TestSharedStoreFailsClosed(t *testing.T) {
	clk := clocktest.New()
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
	clk := clocktest.New()
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
