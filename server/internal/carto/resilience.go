package carto

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// retryPolicy says which failures of a call may be retried.
type retryPolicy int

const (
	// idempotent calls (OAuth, list, get, delete) are retried after
	// transport errors, 5xx and 429: repeating them changes nothing.
	idempotent retryPolicy = iota
	// creates are retried only when CARTO provably did not act: the
	// connection was never made, or it answered 429. After a timeout or a
	// 5xx the token may exist; retrying could make a second one, so the
	// error is returned and reconciliation deletes a token that did appear.
	creates
)

// send makes one logical call: attempts of at most CallTimeout each, under
// the caller's deadline, retried with exponential backoff and full jitter
// as policy allows, refused at once while CARTO asked for a pause on the
// endpoint (see pauses) or while the circuit breaker is open.
//
// read, when not nil, reads the body of a 2xx answer within the attempt's
// deadline, instead of it being buffered (at most maxResponse bytes); the
// body is then not returned. A failure to read the body is a transport
// error (retried as policy allows); any other error read returns is CARTO's
// verdict on the call, returned as it is without a retry.
func (c *Client) send(ctx context.Context, op string, policy retryPolicy, newReq func(ctx context.Context) (*http.Request, error), read bodyReader) (int, []byte, http.Header, error) {
	endpoint := endpointOf(op)
	brk := c.breakerFor(endpoint)
	for attempt := 1; ; attempt++ {
		adm, pause, refused := c.pauses.admit(ctx, endpoint)
		if refused {
			c.observe(endpoint, "paused", 0)
			return 0, nil, nil, &Error{Op: op, Kind: ErrRateLimited, RetryAfter: pause,
				Detail: fmt.Sprintf("CARTO asked for a pause; not calling it for %s", pause.Round(time.Millisecond))}
		}
		if wait, open := brk.allow(); open {
			c.pauses.abandoned(adm)
			c.observe(endpoint, "circuit_open", 0)
			return 0, nil, nil, &Error{Op: op, Kind: ErrUnavailable, RetryAfter: wait,
				Detail: fmt.Sprintf("%d calls failed in a row; not calling CARTO for %s", c.cfg.BreakerThreshold, wait.Round(time.Second))}
		}
		actx, cancel := context.WithTimeout(ctx, c.timeoutFor(endpoint))
		req, err := newReq(actx)
		if err != nil {
			cancel()
			brk.release()
			c.pauses.abandoned(adm)
			return 0, nil, nil, fmt.Errorf("carto: %s: %w", op, err)
		}
		started := time.Now()
		status, body, hdr, err := c.do(req, read)
		cancel()
		c.observe(endpoint, outcomeOf(status, err), time.Since(started))

		var retryable bool
		var wait time.Duration
		var verdict *readVerdict
		switch {
		case errors.As(err, &verdict):
			// CARTO answered; what it answered is refused (too large,
			// malformed). Asking again would get the same.
			brk.success()
			c.pauses.answered(ctx, adm)
			return status, nil, hdr, verdict.err
		case err != nil && ctx.Err() != nil:
			// The caller gave up: no verdict on CARTO.
			brk.release()
			c.pauses.abandoned(adm)
			return 0, nil, nil, transportError(ctx, op, err)
		case err != nil:
			brk.failure()
			c.pauses.answered(ctx, adm)
			retryable = policy == idempotent || neverSent(err)
			err = transportError(ctx, op, err)
		case status >= 500:
			brk.failure()
			c.pauses.answered(ctx, adm)
			retryable = policy == idempotent
		case status == http.StatusTooManyRequests:
			// CARTO is up and says when to come back: nobody calls the
			// endpoint before then. A short wait is waited out here; a
			// long one goes back to the caller with its delay, rather than
			// holding the request (and its waiters) that long.
			brk.success()
			if wait = retryAfter(hdr.Get("Retry-After")); wait == 0 {
				wait = defaultPause
			}
			c.pauses.paused(ctx, adm, wait)
			retryable = wait <= maxRetryWait
		default:
			brk.success()
			c.pauses.answered(ctx, adm)
			return status, body, hdr, nil
		}
		if !retryable || attempt >= c.cfg.MaxAttempts {
			return status, body, hdr, err
		}
		if wait == 0 {
			wait = backoff(attempt)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return status, body, hdr, err // no time left to wait for a retry
		}
		select {
		case <-ctx.Done():
			return status, body, hdr, err
		case <-time.After(wait):
		}
	}
}

// maxRetryWait is the longest wait before a retry: the backoff's cap, and
// the longest Retry-After a call waits out itself.
const maxRetryWait = 2 * time.Second

// endpointOf names the endpoint of an operation, for pauses and metrics.
func endpointOf(op string) string {
	switch op {
	case "get OAuth token":
		return "oauth"
	case "create token":
		return "create"
	case "list tokens":
		return "list"
	case "delete token":
		return "delete"
	case opQueryRows:
		return endpointSQL
	case opInstantiate, opFetchGeoJSON:
		return endpointMaps
	}
	return "other"
}

// dataEndpoint reports an endpoint of the SQL or Maps API, which runs
// queries: it has its own circuit breaker and attempt timeout.
func dataEndpoint(endpoint string) bool { return endpoint == endpointSQL || endpoint == endpointMaps }

// breakerFor is the circuit breaker of an endpoint. The data endpoints have
// their own: a warehouse that fails queries (a connection down, a slow
// BigQuery) must not stop the broker minting tokens, nor the reverse.
func (c *Client) breakerFor(endpoint string) *breaker {
	if dataEndpoint(endpoint) {
		return c.dataBreaker
	}
	return c.breaker
}

// timeoutFor bounds one attempt of a call to endpoint; for the data
// endpoints it includes reading the answer.
func (c *Client) timeoutFor(endpoint string) time.Duration {
	if dataEndpoint(endpoint) {
		return c.cfg.QueryTimeout
	}
	return c.cfg.CallTimeout
}

// observe reports an attempt to Config.Observe.
func (c *Client) observe(endpoint, outcome string, d time.Duration) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(endpoint, outcome, d)
	}
}

func outcomeOf(status int, err error) string {
	var verdict *readVerdict
	switch {
	case errors.As(err, &verdict):
		return "ok" // CARTO answered; the broker refused the answer
	case err != nil:
		return "transport_error"
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status >= 500:
		return "server_error"
	case status >= 400:
		return "client_error"
	}
	return "ok"
}

// neverSent reports a failure to connect: the request never reached CARTO.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// backoff is the wait before retry number attempt: exponential from 100 ms,
// capped at 2 s, with full jitter so callers do not retry in step.
func backoff(attempt int) time.Duration {
	ceiling := min(maxRetryWait, 100*time.Millisecond<<(attempt-1))
	return time.Duration(rand.Int64N(int64(ceiling)) + 1)
}

// breaker fails calls fast while CARTO keeps failing: after threshold
// consecutive failures it opens for cooldown, then lets one probe through;
// the probe's success closes it, its failure opens it again.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

// allow reports whether a call may go ahead; when not, how long until it
// may.
func (b *breaker) allow() (wait time.Duration, open bool) {
	if b.threshold <= 0 {
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return 0, false
	}
	if now := b.now(); now.Before(b.openUntil) {
		return b.openUntil.Sub(now), true
	}
	if b.probing {
		return b.cooldown, true // one probe at a time
	}
	b.probing = true
	return 0, false
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures, b.openUntil, b.probing = 0, time.Time{}, false
}

func (b *breaker) failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if b.threshold > 0 && (b.probing || b.failures >= b.threshold) {
		b.openUntil, b.probing = b.now().Add(b.cooldown), false
	}
}

// release ends a call that gave no verdict on CARTO (its caller left), so a
// probe slot is not held forever.
func (b *breaker) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
}

// Reachable reports whether calls to CARTO are going ahead: false while the
// circuit breaker is open (CARTO kept failing).
func (c *Client) Reachable() bool {
	c.breaker.mu.Lock()
	defer c.breaker.mu.Unlock()
	return c.breaker.openUntil.IsZero()
}
