package tokencache

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

func TestUnstorableTokenIsDeleted(t *testing.T) {
	up := &fakeUpstream{}
	clk := clocktest.New()
	c := newTestCache(t, up, clk, failingStore{memstore.New(memstore.Config{Now: clk.Now})})
	if _, _, err := c.Get(context.Background(), boston, time.Hour); err == nil {
		t.Fatal("no error when the store fails")
	}
	if up.mints.Load() != 1 || up.deletes.Load() != 1 {
		t.Fatalf("%d minted, %d deleted: the unstored token must be deleted upstream", up.mints.Load(), up.deletes.Load())
	}
}

// Two replicas sharing one store (here one memstore, as if it were Redis)
// mint once between them: the store's lock decides who mints, the other
// waits for the result. In a synctest bubble, synctest.Wait returns once
// every caller waits: on the minting replica's gated upstream, or polling
// the store for its token.
func TestReplicasShareOneMint(t *testing.T) {
	synctest.Test(t, testReplicasShareOneMint)
}

func testReplicasShareOneMint(t *testing.T) {
	clk := clocktest.New()
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
	synctest.Wait()
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
// the other replica does not mint a second token. The test runs in a
// synctest bubble: the store's locks expire, and the renewals and the other
// replica's polls run, by the bubble's fake clock.
func TestSlowMintKeepsItsLock(t *testing.T) {
	synctest.Test(t, testSlowMintKeepsItsLock)
}

func testSlowMintKeepsItsLock(t *testing.T) {
	st := memstore.New(memstore.Config{})
	up := &fakeUpstream{gate: make(chan struct{})}
	mk := func() *Cache {
		c := New(Config{Store: st, Upstream: up, LockTTL: 60 * time.Millisecond, WaitPoll: 5 * time.Millisecond})
		return c
	}
	a, b := mk(), mk()
	first := make(chan error, 1)
	go func() { _, _, err := a.Get(context.Background(), boston, time.Hour); first <- err }()
	synctest.Wait() // a holds the lock and waits on CARTO
	second := make(chan error, 1)
	go func() { _, _, err := b.Get(context.Background(), boston, time.Hour); second <- err }()
	time.Sleep(300 * time.Millisecond) // the fake clock: five lock lifetimes pass while b waits
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
// expires; then one of them mints. In a synctest bubble, the lock expires by
// the fake clock, which moves while the replica waits.
func TestDeadHolderLockExpires(t *testing.T) {
	synctest.Test(t, testDeadHolderLockExpires)
}

func testDeadHolderLockExpires(t *testing.T) {
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
