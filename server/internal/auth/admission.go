package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// ErrBusy is returned when a login is shed instead of queued: too many
// password checks are running or waiting, or the caller's address already
// has its share. It is a *BusyError, which says when to retry.
var ErrBusy = errors.New("too many logins at once")

// BusyError says why a login was shed and when to retry.
type BusyError struct {
	Reason     string
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%v (%s); try again in %s", ErrBusy, e.Reason, e.RetryAfter.Round(time.Second))
}

func (e *BusyError) Unwrap() error { return ErrBusy }

// CallerMessage is the whole message: it is written for the caller.
func (e *BusyError) CallerMessage() string { return e.Error() }

// busyRetryAfter is the retry hint of a shed login: a queue drains within
// about a second at bcrypt's cost.
const busyRetryAfter = time.Second

// LoginLimiterConfig configures a LoginLimiter.
type LoginLimiterConfig struct {
	// Slots is how many password checks run at once (each is ~50–300 ms of
	// one CPU's bcrypt work). GOMAXPROCS by default.
	Slots int
	// MaxQueue is how many checks may wait for a slot; more are shed at
	// once. 4 × Slots by default.
	MaxQueue int
	// QueueTimeout is the longest wait for a slot; a check still waiting
	// then is shed. 2 s by default.
	QueueTimeout time.Duration
	// MaxPerAddr is how many checks one client address (an IPv6 /64) may
	// have running or waiting; more are shed at once, so one address cannot
	// fill the queue ahead of everyone else (0: no per-address bound).
	MaxPerAddr int
	// After is the clock of the queue's deadline (time.After by default).
	After func(time.Duration) <-chan time.Time
}

// LoginLimiter is the admission control of password checks. The checks run
// bounded to a few at once (bcrypt must not starve token issuance), the
// queue ahead of them is bounded and each wait has a deadline, and one client
// address gets a fair share: a login flood is shed at once (ErrBusy) instead
// of delaying every other login without bound.
type LoginLimiter struct {
	cfg   LoginLimiterConfig
	slots chan struct{}

	mu      sync.Mutex
	waiting int
	peak    int            // the most checks ever waiting at once
	perAddr map[string]int // checks running or waiting, by address key
}

// NewLoginLimiter returns a LoginLimiter.
func NewLoginLimiter(cfg LoginLimiterConfig) *LoginLimiter {
	if cfg.Slots <= 0 {
		cfg.Slots = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 4 * cfg.Slots
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = 2 * time.Second
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	return &LoginLimiter{cfg: cfg, slots: make(chan struct{}, cfg.Slots), perAddr: map[string]int{}}
}

// Admit waits for a slot to check a password of a login from addr, and
// returns the function that gives it back. It returns a *BusyError at once
// when addr has its share already or the queue is full, and after
// QueueTimeout when no slot came free; ctx's error when ctx ends first.
func (l *LoginLimiter) Admit(ctx context.Context, addr string) (release func(), err error) {
	key := addrKey(addr) // "" (one shared key) when the address is unknown
	l.mu.Lock()
	if l.cfg.MaxPerAddr > 0 && l.perAddr[key] >= l.cfg.MaxPerAddr {
		l.mu.Unlock()
		return nil, &BusyError{Reason: fmt.Sprintf("your address has %d logins in progress already", l.cfg.MaxPerAddr), RetryAfter: busyRetryAfter}
	}
	select {
	case l.slots <- struct{}{}:
		l.perAddr[key]++
		l.mu.Unlock()
		return l.releaser(key), nil
	default:
	}
	if l.waiting >= l.cfg.MaxQueue {
		l.mu.Unlock()
		return nil, &BusyError{Reason: "the broker is checking as many logins as it can", RetryAfter: busyRetryAfter}
	}
	l.waiting++
	l.peak = max(l.peak, l.waiting)
	l.perAddr[key]++
	l.mu.Unlock()

	// Waiting senders on a channel are served in order: the queue is FIFO.
	var admitted bool
	select {
	case l.slots <- struct{}{}:
		admitted = true
	case <-l.cfg.After(l.cfg.QueueTimeout):
		err = &BusyError{Reason: "no login could be checked in time", RetryAfter: busyRetryAfter}
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.mu.Lock()
	l.waiting--
	if !admitted {
		l.leave(key)
	}
	l.mu.Unlock()
	if !admitted {
		return nil, err
	}
	return l.releaser(key), nil
}

// releaser gives back a slot held for key, once.
func (l *LoginLimiter) releaser(key string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.slots
			l.mu.Lock()
			l.leave(key)
			l.mu.Unlock()
		})
	}
}

// leave forgets one check of key. Called with mu held.
func (l *LoginLimiter) leave(key string) {
	if l.perAddr[key]--; l.perAddr[key] <= 0 {
		delete(l.perAddr, key)
	}
}

// Waiting returns how many checks wait for a slot now, and the most that
// ever waited at once.
func (l *LoginLimiter) Waiting() (now, peak int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting, l.peak
}
