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

// Counter counts events in fixed windows; tokencache stores provide one
// shared by every replica.
type Counter interface {
	Count(ctx context.Context, name string, at time.Time, window time.Duration, delta int64) (int64, error)
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	Counter Counter
	// MaxUserFailures failed logins of one username in a window lock that
	// username out until the window ends (0: no limit). 20 by default.
	MaxUserFailures int
	// MaxAddrFailures failed logins from one client address (an IPv6 /64)
	// in a window lock that address out (0: no limit). 100 by default.
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

// counters are the counter names of a login attempt and their limits. Names
// hold digests, never a username as typed.
func (g *Guard) counters(username, addr string) []struct {
	name  string
	limit int
} {
	sum := sha256.Sum256([]byte(NormalizeUsername(username)))
	out := []struct {
		name  string
		limit int
	}{{"login-user:" + hex.EncodeToString(sum[:16]), g.cfg.MaxUserFailures}}
	if a := addrKey(addr); a != "" {
		out = append(out, struct {
			name  string
			limit int
		}{"login-addr:" + a, g.cfg.MaxAddrFailures})
	}
	return out
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

// Check refuses an attempt while its username or address is locked out.
func (g *Guard) Check(ctx context.Context, username, addr string) error {
	now := g.cfg.Now()
	for _, c := range g.counters(username, addr) {
		if c.limit <= 0 {
			continue
		}
		n, err := g.cfg.Counter.Count(ctx, c.name, now, g.cfg.Window, 0)
		if err != nil {
			return fmt.Errorf("check login attempts: %w", err)
		}
		if n >= int64(c.limit) {
			return &LockoutError{RetryAfter: now.Truncate(g.cfg.Window).Add(g.cfg.Window).Sub(now)}
		}
	}
	return nil
}

// Failed counts a failed attempt.
func (g *Guard) Failed(ctx context.Context, username, addr string) error {
	now := g.cfg.Now()
	for _, c := range g.counters(username, addr) {
		if _, err := g.cfg.Counter.Count(ctx, c.name, now, g.cfg.Window, 1); err != nil {
			return fmt.Errorf("count a failed login: %w", err)
		}
	}
	return nil
}

// Succeeded clears the username's failures: its owner got in. The
// address's stay, so one good account does not reset a guessing run.
func (g *Guard) Succeeded(ctx context.Context, username string) error {
	now := g.cfg.Now()
	c := g.counters(username, "")[0]
	n, err := g.cfg.Counter.Count(ctx, c.name, now, g.cfg.Window, 0)
	if err != nil || n == 0 {
		return err
	}
	_, err = g.cfg.Counter.Count(ctx, c.name, now, g.cfg.Window, -n)
	return err
}
