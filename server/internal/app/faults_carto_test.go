package app_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

// Finding 10: CARTO answered token creation 429 with Retry-After: 6, and 20
// callers of 2 cold groups made 20 creation attempts inside those 6 s. Now
// the broker leaves the endpoint alone until the Retry-After has passed.
// The CARTO client's clock is the test's: it moves when the test says.
func TestFaultRateLimitedCartoIsLeftAlone(t *testing.T) {
	clock := clocktest.At(time.Now())
	b := startBroker(t, brokertest.AppOptions(app.WithCartoClock(clock.Now)))
	sessions := []string{b.login("user.boston@acme.com", "boston"), b.login("user.ny@acme.com", "ny")}
	b.sim.SetFaults(cartosim.Faults{RateLimit: true, RetryAfter: 6 * time.Second, Scope: cartosim.ScopeTokens})

	type answer struct {
		code       int
		retryAfter string
		err        error
	}
	issue := func(session string) answer {
		req, _ := http.NewRequest(http.MethodPost, b.rest+"/carto-token", nil)
		req.Header.Set("Authorization", "Bearer "+session)
		resp, err := b.http.Do(req)
		if err != nil {
			return answer{err: err}
		}
		resp.Body.Close()
		return answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	}
	// check wants 503 with a Retry-After of 1 to 6 s.
	check := func(a answer) {
		t.Helper()
		if secs, err := strconv.Atoi(a.retryAfter); a.err != nil || a.code != http.StatusServiceUnavailable || err != nil || secs < 1 || secs > 6 {
			t.Errorf("a caller during CARTO's Retry-After got %d, Retry-After %q, %v; want 503 with 1-6 s", a.code, a.retryAfter, a.err)
		}
	}

	start := clock.Now()
	answers := make([]answer, 20)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = issue(sessions[i%2]) })
	}
	wg.Wait()
	for _, a := range answers {
		check(a)
	}
	attempts := b.sim.Stats().CreateRequests
	if attempts > 2 {
		t.Fatalf("%d creation attempts within CARTO's 6 s Retry-After from 20 callers of 2 groups, want at most 2", attempts)
	}

	// CARTO is ready again, but asked for 6 s: nobody calls it before then.
	b.sim.SetFaults(cartosim.Faults{})
	check(issue(sessions[0]))
	check(issue(sessions[1]))
	if n := b.sim.Stats().CreateRequests; n != attempts {
		t.Fatalf("%d creation attempts during the pause after CARTO recovered", n-attempts)
	}
	// Then, as the clock passes the pause, the first caller probes and
	// everyone is served again.
	var recovered time.Duration
	for {
		clock.Advance(time.Second)
		if a := issue(sessions[0]); a.code == http.StatusOK {
			recovered = clock.Now().Sub(start)
			break
		}
		if clock.Now().Sub(start) > 15*time.Second {
			t.Fatal("not served 15 s after a 6 s Retry-After")
		}
	}
	if a := issue(sessions[1]); a.code != http.StatusOK {
		t.Fatalf("the other group after the pause: %+v", a)
	}
	if recovered < 4*time.Second {
		t.Errorf("served again %v after a 6 s Retry-After", recovered)
	}
	t.Logf("429 + Retry-After 6 s on creation: 20 callers of 2 cold groups made %d creation attempts, all answered 503 + Retry-After <= 6; served again %v after the first 429 (%d attempts in all)",
		attempts, recovered.Round(time.Millisecond), b.sim.Stats().CreateRequests)
}
