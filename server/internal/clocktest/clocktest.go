// Package clocktest holds the tests' one settable clock. The code under test
// reads time through an injected `func() time.Time` (a Config's Now field);
// a test passes a Clock's Now and moves it with Set and Advance. Code whose
// waits matter (timers, tickers, deadlines) is tested in a testing/synctest
// bubble instead, where the real clock is fake.
package clocktest

import (
	"sync"
	"time"
)

// Start is where every Clock starts unless told otherwise: a fixed instant,
// so that failures print the same times on every run.
var Start = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock at Start.
func New() *Clock { return At(Start) }

// At returns a Clock at t.
func At(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t (backwards too, to test clock steps).
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}
