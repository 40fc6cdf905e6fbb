package carto

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

// rateLimited checks that err is CARTO's rate limit with a wait in (0, limit].
func rateLimited(t *testing.T, err error, limit time.Duration) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrRateLimited) || ce.RetryAfter <= 0 || ce.RetryAfter > limit {
		t.Errorf("want rate limited with a wait in (0, %v]: %v", limit, err)
	}
}

// concurrently runs call n times at once and checks each is rate limited.
func concurrently(t *testing.T, n int, wait time.Duration, call func() error) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { rateLimited(t, call(), wait) })
	}
	wg.Wait()
}

// Finding 10: CARTO answers token creation 429 with Retry-After: 6; every
// later caller, on this replica or another, used to call it again at once.
func TestFaultRateLimitedCreateIsPaused(t *testing.T) {
	e := newEnv(t, cartosim.Config{})
	store := memstore.New(memstore.Config{Now: e.clk.Now})
	cs := replicas(t, e, store, 2)
	ctx := context.Background()
	for _, c := range cs { // OAuth tokens in hand
		if _, err := c.ListTokens(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.sim.SetFaults(cartosim.Faults{RateLimit: true, RetryAfter: 6 * time.Second, Scope: cartosim.ScopeTokens})
	create := func(c *Client) func() error {
		return func() error {
			_, err := c.CreateToken(ctx, bostonRequest(e.clk.Now().Add(time.Hour)))
			return err
		}
	}
	rateLimited(t, create(cs[0])(), 6*time.Second)
	if n := e.sim.Stats().CreateRequests; n != 1 {
		t.Fatalf("%d creation attempts for the first call, want 1", n)
	}

	e.clk.Advance(2 * time.Second)
	concurrently(t, 20, 4*time.Second, create(cs[0]))
	concurrently(t, 20, 4*time.Second, create(cs[1])) // the other replica
	if n := e.sim.Stats().CreateRequests; n != 1 {
		t.Fatalf("%d creation attempts within CARTO's Retry-After, want 1", n)
	}
	// The pause is the create endpoint's: listing still goes through.
	e.sim.SetFaults(cartosim.Faults{RateLimit: true, RetryAfter: 6 * time.Second, Scope: cartosim.ScopeOAuth})
	if _, err := cs[1].ListTokens(ctx); err != nil {
		t.Fatalf("list during a pause of create: %v", err)
	}

	// The pause is over but CARTO still limits: one probe, a new pause.
	e.sim.SetFaults(cartosim.Faults{RateLimit: true, RetryAfter: 6 * time.Second, Scope: cartosim.ScopeTokens})
	e.clk.Advance(4 * time.Second)
	concurrently(t, 10, 6*time.Second, create(cs[0]))
	concurrently(t, 10, 6*time.Second, create(cs[1]))
	if n := e.sim.Stats().CreateRequests; n != 2 {
		t.Fatalf("%d creation attempts after the pause, want 2 (one probe)", n)
	}

	// CARTO takes calls again: after the pause, the probe goes through and
	// ends it for every replica.
	e.sim.SetFaults(cartosim.Faults{})
	e.clk.Advance(6 * time.Second)
	for i, c := range []*Client{cs[0], cs[1], cs[0]} {
		if err := create(c)(); err != nil {
			t.Fatalf("call %d after the pause: %v", i, err)
		}
	}
	if s := e.sim.Stats(); s.CreateRequests != 5 || s.TokensCreated != 3 {
		t.Fatalf("after the pause: %d creation attempts, %d created; want 5 and 3", s.CreateRequests, s.TokensCreated)
	}
}

// Finding 10: the OAuth endpoint answers 429 with Retry-After: 6 and no
// replica has a token; callers used to ask it again at once.
func TestFaultRateLimitedOAuthIsPaused(t *testing.T) {
	e := newEnv(t, cartosim.Config{})
	e.sim.SetFaults(cartosim.Faults{RateLimit: true, RetryAfter: 6 * time.Second, Scope: cartosim.ScopeOAuth})
	cs := replicas(t, e, memstore.New(memstore.Config{Now: e.clk.Now}), 2)
	ctx := context.Background()
	list := func(c *Client) func() error {
		return func() error { _, err := c.ListTokens(ctx); return err }
	}
	concurrently(t, 20, 6*time.Second, list(cs[0]))
	if n := e.sim.Stats().OAuthRequests; n != 1 {
		t.Fatalf("%d OAuth requests from 20 callers, want 1", n)
	}
	e.clk.Advance(3 * time.Second)
	concurrently(t, 20, 3*time.Second, list(cs[0])) // new fetches, each refused
	concurrently(t, 20, 3*time.Second, list(cs[1])) // the other replica
	if n := e.sim.Stats().OAuthRequests; n != 1 {
		t.Fatalf("%d OAuth requests within CARTO's Retry-After, want 1", n)
	}

	e.sim.SetFaults(cartosim.Faults{})
	e.clk.Advance(3 * time.Second)
	for _, c := range cs {
		if err := list(c)(); err != nil {
			t.Fatalf("after the pause: %v", err)
		}
	}
	if s := e.sim.Stats(); s.OAuthRequests != 2 || s.TokensListed != 2 {
		t.Fatalf("after the pause: %d OAuth requests, %d lists; want 2 and 2", s.OAuthRequests, s.TokensListed)
	}
}

// Finding 10, without a shared store: the pause holds within one client,
// and the first call after it is a single probe.
func TestFaultRateLimitedPauseLocal(t *testing.T) {
	e := newEnv(t, cartosim.Config{})
	ctx := context.Background()
	if _, err := e.client.ListTokens(ctx); err != nil {
		t.Fatal(err)
	}
	e.sim.SetFaults(cartosim.Faults{RateLimit: true, RetryAfter: 6 * time.Second, Scope: cartosim.ScopeTokens})
	create := func() error {
		_, err := e.client.CreateToken(ctx, bostonRequest(e.clk.Now().Add(time.Hour)))
		return err
	}
	concurrently(t, 1, 6*time.Second, create)
	concurrently(t, 20, 6*time.Second, create)
	e.clk.Advance(6 * time.Second)
	concurrently(t, 20, 6*time.Second, create) // one probe, paused again
	if n := e.sim.Stats().CreateRequests; n != 2 {
		t.Fatalf("%d creation attempts, want 2", n)
	}
	e.sim.SetFaults(cartosim.Faults{})
	e.clk.Advance(6 * time.Second)
	for range 3 {
		if err := create(); err != nil {
			t.Fatal(err)
		}
	}
}

// inProcess serves a client's requests with a handler, off the network, so
// that the client and the emulator can run inside a synctest bubble.
type inProcess struct{ h http.Handler }

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// Finding 13: the OAuth token was refreshed only when a call noticed it was
// due; with no calls, the next caller found it unusable and waited for a
// fetch. Three replicas on one store refresh it at 80% of its life, ahead of
// any call, with one fetch between them.
func TestFaultOAuthRefreshedAheadWithoutCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lifetime = 5 * time.Minute
		sim, err := cartosim.New(cartosim.Config{ClientID: "client-1", ClientSecret: secret, OAuthTTL: lifetime})
		if err != nil {
			t.Fatal(err)
		}
		mem := memstore.New(memstore.Config{})
		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var cs []*Client
		for range 3 {
			c, err := New(Config{BaseURL: "http://carto.test", AuthURL: "http://carto.test/oauth/token", ClientID: "client-1", ClientSecret: secret,
				HTTPClient: &http.Client{Transport: inProcess{sim}},
				Shared:     store.SharedSecret{Store: mem, Name: "carto-oauth"}})
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
			wg.Go(func() { c.KeepOAuthFresh(ctx) })
		}
		synctest.Wait()
		if n := sim.Stats().OAuthRequests; n != 1 {
			t.Fatalf("%d OAuth requests at start, want 1", n)
		}

		time.Sleep(lifetime*8/10 - time.Second)
		synctest.Wait()
		if n := sim.Stats().OAuthRequests; n != 1 {
			t.Fatalf("%d OAuth requests before 80%% of the lifetime, want 1", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := sim.Stats().OAuthRequests; n != 2 {
			t.Fatalf("%d OAuth requests just after 80%% of the lifetime with no call, want 2", n)
		}
		// Long after the first token expired, every replica holds the new
		// one: calls need no fetch.
		time.Sleep(lifetime * 6 / 10)
		for _, c := range cs {
			if _, err := c.ListTokens(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if s := sim.Stats(); s.OAuthRequests != 2 || s.TokensListed != 3 {
			t.Fatalf("%d OAuth requests, %d lists; want 2 and 3", s.OAuthRequests, s.TokensListed)
		}
		// And so on, one fetch per 80% of a lifetime.
		time.Sleep(3 * lifetime * 8 / 10)
		synctest.Wait()
		if n := sim.Stats().OAuthRequests; n != 5 {
			t.Fatalf("%d OAuth requests after three more refresh times, want 5", n)
		}
		stop()
		wg.Wait()
	})
}
