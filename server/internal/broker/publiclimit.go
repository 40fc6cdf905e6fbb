package broker

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrPublicRateLimited reports an address past its rate of public queries.
var ErrPublicRateLimited = errors.New("too many public queries from this address")

// PublicRateError is a public query refused for its address's rate; it
// says when the address may run one again.
type PublicRateError struct {
	PerMinute  int
	RetryAfter time.Duration
}

func (e *PublicRateError) Error() string {
	return ErrPublicRateLimited.Error() + ": " + e.CallerMessage()
}

// CallerMessage is what the caller is told.
func (e *PublicRateError) CallerMessage() string {
	return fmt.Sprintf("more than %d public queries a minute from this address; retry after %ds", e.PerMinute, int(math.Ceil(e.RetryAfter.Seconds())))
}

func (e *PublicRateError) Unwrap() error { return ErrPublicRateLimited }

// publicLimiter bounds the public queries each client address runs: a token
// bucket per address (perMinute a minute, bursts of a sixth of it). It
// keeps at most maxAddrs addresses: past that it starts afresh, which only
// ever gives a flood's addresses a new allowance, never anyone more.
type publicLimiter struct {
	perMinute int
	mu        sync.Mutex
	byAddr    map[string]*rate.Limiter
}

const maxAddrs = 10_000

func newPublicLimiter(perMinute int) *publicLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &publicLimiter{perMinute: perMinute, byAddr: map[string]*rate.Limiter{}}
}

// allow takes one run for addr at now, or says when to retry.
func (l *publicLimiter) allow(addr string, now time.Time) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	lim, ok := l.byAddr[addr]
	if !ok {
		if len(l.byAddr) >= maxAddrs {
			clear(l.byAddr)
		}
		lim = rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), max(1, l.perMinute/6))
		l.byAddr[addr] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return &PublicRateError{PerMinute: l.perMinute, RetryAfter: d}
	}
	return nil
}
