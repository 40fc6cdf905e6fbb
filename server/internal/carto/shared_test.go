package carto

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

// replicas returns n clients of one emulator that share their OAuth token
// and CARTO's pauses through one store, as replicas on one Redis do.
func replicas(t *testing.T, e *env, st store.Store, n int) []*Client {
	t.Helper()
	var out []*Client
	for range n {
		c, err := New(Config{
			BaseURL: e.srv.URL, AuthURL: e.srv.URL + "/oauth/token", ClientID: "client-1", ClientSecret: secret,
			Now: e.clk.Now, FetchTimeout: 2 * time.Second,
			Shared: store.SharedSecret{Store: st, Name: "carto-oauth"},
			Pauses: store.SharedPauses{Store: st, Name: "carto-pause"},
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestReplicasShareOneOAuthToken(t *testing.T) {
	e := newEnv(t, cartosim.Config{OAuthTTL: time.Hour})
	e.sim.SetFaults(cartosim.Faults{Latency: 50 * time.Millisecond, Scope: cartosim.ScopeOAuth})
	store := memstore.New(memstore.Config{Now: e.clk.Now})
	cs := replicas(t, e, store, 3)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if _, err := cs[i%3].ListTokens(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.sim.Stats().OAuthRequests; n != 1 {
		t.Fatalf("%d OAuth requests from 3 replicas, want 1", n)
	}

	// Past 80% of the lifetime every replica wants a refresh; one fetches.
	e.clk.Advance(50 * time.Minute)
	for _, c := range cs {
		if _, err := c.ListTokens(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every replica's refresh has ended (joining the one in
	// flight, or adopting the shared token if it is over). The sim counting
	// the request is not enough: the token is saved for the others after
	// that, and moving the clock before then would expire the fetcher's
	// lock and let a waiting replica fetch a second one.
	for _, c := range cs {
		if r := <-c.oauth.fetch(context.Background()); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if n := e.sim.Stats().OAuthIssued; n != 2 {
		t.Fatalf("%d OAuth tokens issued after the refresh round, want 2", n)
	}
	e.clk.Advance(15 * time.Minute) // the first token is now expired
	for _, c := range cs {
		if _, err := c.ListTokens(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.sim.Stats().OAuthRequests; n != 2 {
		t.Fatalf("%d OAuth requests after one refresh round of 3 replicas, want 2", n)
	}

	// A restarted replica finds the shared token: no fetch.
	fresh := replicas(t, e, store, 1)[0]
	if _, err := fresh.ListTokens(context.Background()); err != nil || e.sim.Stats().OAuthRequests != 2 {
		t.Fatalf("restarted replica: %v, %d OAuth requests", err, e.sim.Stats().OAuthRequests)
	}
}

// CARTO refuses the shared token: the replica that notices drops it for
// everyone, so the others do not keep using it.
func TestRefusedSharedTokenIsDropped(t *testing.T) {
	simClock := clocktest.At(time.Now())
	e := newEnv(t, cartosim.Config{OAuthTTL: time.Hour, Now: simClock.Now})
	store := memstore.New(memstore.Config{Now: e.clk.Now})
	cs := replicas(t, e, store, 2)
	for _, c := range cs { // both replicas hold the token
		if _, err := c.ListTokens(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	simClock.Advance(2 * time.Hour) // CARTO now refuses that token
	if _, err := cs[0].ListTokens(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := cs[1].ListTokens(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := e.sim.Stats(); s.OAuthRequests != 2 {
		// The second replica's own 401 makes it drop only its stale copy
		// (the shared one is already the new token), then adopt the new one.
		t.Fatalf("%d OAuth requests, want 2 (one replaced, shared by both)", s.OAuthRequests)
	}
}
