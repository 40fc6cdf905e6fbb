package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ErrTooManyAttempts is returned while logins are locked out. It is a
// *LockoutError, which says until when.
var ErrTooManyAttempts = errors.New("too many failed logins")

// LockoutError says how long a lockout lasts.
type LockoutError struct{ RetryAfter time.Duration }

func (e *LockoutError) Error() string {
	return fmt.Sprintf("%v; try again in %s", ErrTooManyAttempts, e.RetryAfter.Round(time.Second))
}

func (e *LockoutError) Unwrap() error { return ErrTooManyAttempts }

// CallerMessage is the whole message: it is written for the caller.
func (e *LockoutError) CallerMessage() string { return e.Error() }

// Counter counts events in fixed windows; tokencache stores provide one
// shared by every replica.
type Counter interface {
	Count(ctx context.Context, name string, at time.Time, window time.Duration, delta int64) (int64, error)
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	Counter Counter
	// MaxUserFailures password checks of one username in a window, failed
	// or still running, lock that username out until the window ends (0: no
	// limit).
	MaxUserFailures int
	// MaxAddrFailures password checks from one client address (an IPv6
	// /64) in a window, failed or still running, lock that address out (0:
	// no limit).
	MaxAddrFailures int
	Window          time.Duration // 15 min by default
	Now             func() time.Time
}

// Guard limits password guessing: per username (however many addresses an
// attacker uses) and per client address (however many usernames it tries).
// Unknown usernames are counted like known ones, so a lockout says nothing
// about who exists.
type Guard struct{ cfg GuardConfig }

// NewGuard returns a Guard.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.Window <= 0 {
		cfg.Window = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Guard{cfg: cfg}
}

// counter is one limit of login attempts. Names hold digests, never a
// username as typed.
type counter struct {
	name  string
	limit int // 0: none
}

func (g *Guard) userCounter(username string) counter {
	sum := sha256.Sum256([]byte(NormalizeUsername(username)))
	return counter{"login-user:" + hex.EncodeToString(sum[:16]), g.cfg.MaxUserFailures}
}

// addrCounter is the address's counter; its name is "" when addr is not an
// address.
func (g *Guard) addrCounter(addr string) counter {
	if a := addrKey(addr); a != "" {
		return counter{"login-addr:" + a, g.cfg.MaxAddrFailures}
	}
	return counter{}
}

// addrKey is the client's address, widened to its /64 for IPv6, where one
// client commonly holds a whole /64.
func addrKey(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	ip := ap.Addr()
	if err != nil {
		if ip, err = netip.ParseAddr(addr); err != nil {
			return ""
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// Attempt is a login attempt reserved by Guard.Reserve. It counts as a
// failed login unless Succeeded or Release says otherwise.
type Attempt struct {
	g        *Guard
	at       time.Time // when it was reserved: its window
	user     counter
	reserved []string // the counters incremented
}

// Reserve reserves one password check for username from addr, before the
// password is checked: each limited counter is incremented first, and the
// attempt is refused if that takes it over its limit. Increment and read are
// one atomic operation of the store (memory, bbolt, Redis), so concurrent
// attempts, on one replica or many, never check more passwords in a window
// than the limit, however they are sent. A refused attempt takes its
// increments back, so it extends nothing. A locked-out username is refused
// whether the password is right or not.
func (g *Guard) Reserve(ctx context.Context, username, addr string) (*Attempt, error) {
	a := &Attempt{g: g, at: g.cfg.Now(), user: g.userCounter(username)}
	for _, c := range []counter{a.user, g.addrCounter(addr)} {
		if c.name == "" || c.limit <= 0 {
			continue
		}
		n, err := g.cfg.Counter.Count(ctx, c.name, a.at, g.cfg.Window, 1)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("reserve a login attempt: %w", err), a.Release(ctx))
		}
		a.reserved = append(a.reserved, c.name)
		if n > int64(c.limit) {
			// A failed take-back leaves one count too many: the safe side.
			_ = a.Release(ctx)
			return nil, &LockoutError{RetryAfter: a.at.Truncate(g.cfg.Window).Add(g.cfg.Window).Sub(a.at)}
		}
	}
	return a, nil
}

// Succeeded ends an attempt whose password was right: it no longer counts
// against the address, and the username's failures are cleared (its owner
// got in). The address's other failures stay, so one good account does not
// reset a guessing run.
func (a *Attempt) Succeeded(ctx context.Context) error {
	var errs []error
	for _, name := range a.reserved {
		if name != a.user.name {
			errs = append(errs, a.release(ctx, name))
		}
	}
	if a.user.limit <= 0 {
		return errors.Join(errs...)
	}
	// Subtract what was read: reservations made meanwhile stay.
	now := a.g.cfg.Now()
	n, err := a.g.cfg.Counter.Count(ctx, a.user.name, now, a.g.cfg.Window, 0)
	if err == nil && n > 0 {
		_, err = a.g.cfg.Counter.Count(ctx, a.user.name, now, a.g.cfg.Window, -n)
	}
	return errors.Join(append(errs, err)...)
}

// Release ends an attempt whose password was not checked (the caller gave
// up, or the check could not run): it counts against nothing.
func (a *Attempt) Release(ctx context.Context) error {
	var errs []error
	for _, name := range a.reserved {
		errs = append(errs, a.release(ctx, name))
	}
	a.reserved = nil
	return errors.Join(errs...)
}

// release takes back one reservation, in the window it was made in, even
// when ctx has ended (a reservation left behind would count as a failure).
func (a *Attempt) release(ctx context.Context, name string) error {
	_, err := a.g.cfg.Counter.Count(context.WithoutCancel(ctx), name, a.at, a.g.cfg.Window, -1)
	return err
}
