package carto

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

// flaky answers the first n requests of the Tokens API with status (or, with
// status 0, drops the connection), then passes them to the emulator.
type flaky struct {
	next   http.Handler
	n      atomic.Int64
	status int
	calls  atomic.Int64
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth/token" {
		f.next.ServeHTTP(w, r)
		return
	}
	f.calls.Add(1)
	if f.n.Add(-1) >= 0 {
		if f.status == 0 {
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		if f.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(f.status)
		return
	}
	f.next.ServeHTTP(w, r)
}

func flakyClient(t *testing.T, failures int64, status int) (*Client, *flaky, *cartosim.Sim) {
	t.Helper()
	sim, err := cartosim.New(cartosim.Config{ClientID: "client-1", ClientSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	f := &flaky{next: sim, status: status}
	f.n.Store(failures)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "client-1", ClientSecret: secret, BreakerThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c, f, sim
}

// Which failures are retried: idempotent calls after any transient failure;
// a creation only where CARTO provably did not act (429), so a retry never
// makes a second token.
func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		create    bool
		wantCalls int64
		wantOK    bool
	}{
		{"list after two 503s", http.StatusServiceUnavailable, false, 3, true},
		{"list after a dropped connection", 0, false, 2, true},
		{"create after a 429", http.StatusTooManyRequests, true, 2, true},
		{"create after a 500 is not retried", http.StatusInternalServerError, true, 1, false},
		{"create after a dropped connection is not retried", 0, true, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failures := int64(1)
			if tt.status == http.StatusServiceUnavailable {
				failures = 2
			}
			c, f, sim := flakyClient(t, failures, tt.status)
			var err error
			if tt.create {
				_, err = c.CreateToken(context.Background(), bostonRequest(time.Now().Add(time.Hour)))
			} else {
				_, err = c.ListTokens(context.Background())
			}
			if (err == nil) != tt.wantOK || f.calls.Load() != tt.wantCalls {
				t.Fatalf("err %v after %d calls; want ok=%v after %d", err, f.calls.Load(), tt.wantOK, tt.wantCalls)
			}
			if tt.create && sim.Stats().TokensCreated > 1 {
				t.Fatal("a retry created a second token")
			}
		})
	}
}

// A Retry-After longer than the caller can or should wait goes back to the
// caller at once, with its delay.
func TestLongRetryAfterIsReturned(t *testing.T) {
	e := newEnv(t, cartosim.Config{})
	e.sim.SetFaults(cartosim.Faults{RateLimit: true, RetryAfter: 30 * time.Second, Scope: cartosim.ScopeTokens})
	start := time.Now()
	_, err := e.client.CreateToken(context.Background(), bostonRequest(time.Now().Add(time.Hour)))
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != ErrRateLimited || ce.RetryAfter != 30*time.Second {
		t.Fatalf("err = %v", err)
	}
	t.Logf("429 with Retry-After 30s answered in %v", time.Since(start).Round(time.Millisecond))
}

// While CARTO is down the breaker opens: calls fail at once without reaching
// it; after the cooldown one probe goes through, and a success closes it.
func TestCircuitBreaker(t *testing.T) {
	clk := clocktest.At(time.Now())
	sim, _ := cartosim.New(cartosim.Config{ClientID: "client-1", ClientSecret: secret})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "client-1", ClientSecret: secret,
		Now: clk.Now, MaxAttempts: 1, BreakerThreshold: 3, BreakerCooldown: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.ListTokens(ctx); err != nil { // OAuth token in hand
		t.Fatal(err)
	}
	sim.SetFaults(cartosim.Faults{Outage: cartosim.OutageUnavailable, Scope: cartosim.ScopeTokens})
	for range 3 {
		if _, err := c.ListTokens(ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
	}
	before := sim.Stats().Requests
	_, err = c.ListTokens(ctx)
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != ErrUnavailable || ce.RetryAfter <= 0 || sim.Stats().Requests != before {
		t.Fatalf("open breaker: %v, %d requests reached CARTO", err, sim.Stats().Requests-before)
	}
	sim.SetFaults(cartosim.Faults{})
	clk.Advance(11 * time.Second)
	if _, err := c.ListTokens(ctx); err != nil {
		t.Fatalf("probe after the cooldown: %v", err)
	}
	if _, err := c.ListTokens(ctx); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	// A failed probe opens it again at once.
	sim.SetFaults(cartosim.Faults{Outage: cartosim.OutageUnavailable, Scope: cartosim.ScopeTokens})
	for range 3 {
		_, _ = c.ListTokens(ctx)
	}
	clk.Advance(11 * time.Second)
	_, _ = c.ListTokens(ctx) // the probe fails
	before = sim.Stats().Requests
	if _, err := c.ListTokens(ctx); !errors.Is(err, ErrUnavailable) || sim.Stats().Requests != before {
		t.Fatalf("after a failed probe: %v", err)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	for attempt := 1; attempt <= 10; attempt++ {
		for range 20 {
			d := backoff(attempt)
			if d <= 0 || d > maxRetryWait {
				t.Fatalf("backoff(%d) = %v", attempt, d)
			}
			seen[d] = true
		}
	}
	if len(seen) < 50 {
		t.Fatal("backoff is not jittered")
	}
}
