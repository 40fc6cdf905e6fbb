package tokencache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// ErrQuotaExceeded wraps a description of the guard that refused a mint.
var ErrQuotaExceeded = errors.New("token quota exceeded")

// Store counters and locks of the quota guards. Group names may hold any
// byte, so counters of a group are named by a hash of it.
const (
	// CreationCounter counts token creations, in windows of MintWindow.
	CreationCounter = "token-creations"
	// pendingCounter counts the mints that hold a live-token slot but
	// whose token is not stored yet, in windows of pendingWindow.
	pendingCounter = "token-creations-pending"
	// liveLock serialises the live-token check and its reservation.
	liveLock = "quota:live-tokens"
)

func groupMintCounter(group string) string {
	return "token-creations/group/" + store.TokenID(group)[:32]
}

func groupRevocationCounter(group string) string {
	return "token-revocations/group/" + store.TokenID(group)[:32]
}

// QuotaError is a refusal by a quota guard. It wraps ErrQuotaExceeded and
// says when trying again may succeed.
type QuotaError struct {
	Limit      string        // the limit reached, for the caller
	RetryAfter time.Duration // 0 when unknown
}

func (e *QuotaError) Error() string { return ErrQuotaExceeded.Error() + ": " + e.CallerMessage() }

// CallerMessage names the limit reached and when to retry.
func (e *QuotaError) CallerMessage() string {
	msg := e.Limit + " is reached"
	if e.RetryAfter > 0 {
		msg += "; retry in " + e.RetryAfter.Round(time.Second).String()
	}
	return msg
}

func (e *QuotaError) Unwrap() error { return ErrQuotaExceeded }

// reservation is what a mint holds while it runs: its places in the
// creation counters and, under a live-token ceiling, a pending live slot.
// Every place is taken in the store before CARTO is asked, so the guards
// hold however many mints run at once, on however many replicas.
type reservation struct {
	at       time.Time // the windows the places were taken in
	counters []string  // creation counters incremented at at
	pending  bool      // pendingCounter incremented at at
}

// reserve takes, atomically in the store, a place in every guard that
// applies to the mint of key, or takes none and returns a *QuotaError.
//
// Refreshes (a key's token replaced before it expires) are not counted
// against the group's budget: they are one per key per half-life whatever
// users do, so a group cannot starve its own refreshes. And only refreshes
// may use the last RefreshReservePercent of the deployment's ceilings: user
// calls, cold mints, stop short of them, so they never starve refreshes.
func (c *Cache) reserve(ctx context.Context, key store.Key, refresh bool) (*reservation, error) {
	r := &reservation{at: c.cfg.Now()}
	if c.cfg.MaxGroupMints > 0 && !refresh {
		name := groupMintCounter(key.Group)
		if err := c.take(ctx, r, name, c.cfg.MaxGroupMints); err != nil {
			return nil, c.refused(ctx, r, err, fmt.Sprintf("group %s's limit of %d CARTO token creations per %s",
				key.Group, c.cfg.MaxGroupMints, c.cfg.MintWindow))
		}
	}
	// The creation counter runs even with no ceiling: the metrics read it.
	limit := c.cfg.MaxMints - c.refreshReserve(c.cfg.MaxMints, refresh)
	if err := c.take(ctx, r, CreationCounter, limit); err != nil {
		return nil, c.refused(ctx, r, err, c.describe("the broker's limit of %d CARTO token creations per %s", c.cfg.MaxMints, refresh))
	}
	if c.cfg.MaxLiveTokens > 0 {
		if err := c.reserveLive(ctx, r, refresh); err != nil {
			return nil, c.refused(ctx, r, err, "")
		}
	}
	return r, nil
}

// describe words a deployment ceiling, and the share of it kept for
// refreshes when the refusal is a user call's.
func (c *Cache) describe(format string, limit int, refresh bool) string {
	s := fmt.Sprintf(format, limit, c.cfg.MintWindow)
	if n := c.refreshReserve(limit, refresh); n > 0 {
		s += fmt.Sprintf(" (%d of them kept for background refreshes)", n)
	}
	return s
}

// refreshReserve is the part of limit only refreshes may use.
func (c *Cache) refreshReserve(limit int, refresh bool) int {
	if refresh {
		return 0
	}
	return limit * c.cfg.RefreshReservePercent / 100
}

// errOverLimit is take's refusal, worded by its caller.
var errOverLimit = errors.New("over limit")

// take adds one to counter name in the window of r.at, recording the place
// in r, and returns errOverLimit when the count passes limit (0: no limit);
// the caller then gives back every place r holds (refused). The increment
// and the read are one atomic store operation, so of concurrent callers
// exactly limit pass.
func (c *Cache) take(ctx context.Context, r *reservation, name string, limit int) error {
	n, err := c.cfg.Store.Count(ctx, name, r.at, c.cfg.MintWindow, 1)
	if err != nil {
		return fmt.Errorf("quota counter: %w", err)
	}
	r.counters = append(r.counters, name)
	if limit > 0 && n > int64(limit) {
		return errOverLimit
	}
	return nil
}

// refused gives back what r holds and returns the refusal: a *QuotaError
// for a limit (worded by limit, unless err is one already), err otherwise.
func (c *Cache) refused(ctx context.Context, r *reservation, err error, limit string) error {
	c.release(ctx, r, true)
	if !errors.Is(err, errOverLimit) {
		return err
	}
	return &QuotaError{Limit: limit, RetryAfter: c.windowLeft(r.at)}
}

// windowLeft is how long the mint window containing at still runs.
func (c *Cache) windowLeft(at time.Time) time.Duration {
	return at.Truncate(c.cfg.MintWindow).Add(c.cfg.MintWindow).Sub(c.cfg.Now())
}

// pendingWindow is the window of the pending-slot counter: twice the
// longest a mint may run, so a reservation stays counted for the whole of
// its mint (it is read in the current and the previous window), even
// between replicas whose clocks differ by up to MintTimeout.
func (c *Cache) pendingWindow() time.Duration { return 2 * c.cfg.MintTimeout }

// reserveLive takes a live-token slot: under a short store-wide lock, it
// counts the stored tokens plus the pending slots of mints still running,
// and adds one pending slot if that stays under the ceiling.
//
// Why a pending counter with a lock, rather than the lock around the whole
// mint: mints of different keys still run in parallel (the lock is held for
// a few store calls, not for CARTO's answer). Why it cannot leak: the slot
// is a counter in windows of pendingWindow, read over the current and the
// previous window only, so a replica that dies mid-mint holds its slot for
// at most two windows (4 × MintTimeout, 2 minutes by default); a mint that
// ends gives it back at once: as its token is stored (then counted by
// Entries; both under the lock, see put) or when it fails. A lock holder that dies blocks the others for
// at most LockTTL.
func (c *Cache) reserveLive(ctx context.Context, r *reservation, refresh bool) error {
	lock, err := c.lockLive(ctx)
	if err != nil {
		return err
	}
	defer c.unlock(ctx, lock)
	live, err := c.cfg.Store.Entries(ctx)
	if err != nil {
		return fmt.Errorf("count live tokens: %w", err)
	}
	w := c.pendingWindow()
	pending := int64(0)
	for _, at := range []time.Time{r.at.Add(-w), r.at} {
		n, err := c.cfg.Store.Count(ctx, pendingCounter, at, w, 0)
		if err != nil {
			return fmt.Errorf("count pending token creations: %w", err)
		}
		pending += max(n, 0)
	}
	limit := c.cfg.MaxLiveTokens - c.refreshReserve(c.cfg.MaxLiveTokens, refresh)
	if int64(len(live))+pending >= int64(limit) {
		qe := &QuotaError{Limit: c.describeLive(refresh)}
		for _, e := range live { // a slot frees up when a token expires, at the latest
			if d := e.ExpiresAt.Sub(r.at); d > 0 && (qe.RetryAfter == 0 || d < qe.RetryAfter) {
				qe.RetryAfter = d
			}
		}
		return qe
	}
	if _, err := c.cfg.Store.Count(ctx, pendingCounter, r.at, w, 1); err != nil {
		return fmt.Errorf("count pending token creations: %w", err)
	}
	r.pending = true
	return nil
}

func (c *Cache) describeLive(refresh bool) string {
	s := fmt.Sprintf("the broker's limit of %d live CARTO tokens", c.cfg.MaxLiveTokens)
	if n := c.refreshReserve(c.cfg.MaxLiveTokens, refresh); n > 0 {
		s += fmt.Sprintf(" (%d of them kept for background refreshes)", n)
	}
	return s
}

// lockLive takes the live-token quota lock, waiting while another mint
// holds it.
func (c *Cache) lockLive(ctx context.Context) (store.Lock, error) {
	for {
		lock, err := c.cfg.Store.TryLock(ctx, liveLock, c.cfg.LockTTL)
		if !errors.Is(err, store.ErrLocked) {
			return lock, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(c.cfg.WaitPoll):
		}
	}
}

// put stores a minted entry and ends its pending live slot (the store now
// holds the token, or it is deleted) in one step under the live-token lock:
// a check in between would count the token twice, stored and pending, and
// refuse a mint the ceiling allows.
func (c *Cache) put(ctx context.Context, e store.Entry, r *reservation) error {
	if r.pending {
		lock, err := c.lockLive(ctx)
		if err != nil {
			c.release(ctx, r, false)
			return err
		}
		defer c.unlock(ctx, lock)
	}
	err := c.cfg.Store.Put(ctx, e)
	c.release(ctx, r, false)
	return err
}

func (c *Cache) unlock(ctx context.Context, lock store.Lock) {
	if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
		c.cfg.Logger.Warn("quota lock release failed; it expires by itself", "error", err)
	}
}

// release gives back r's pending live slot and, when counts is set (the
// mint created nothing at CARTO), its places in the creation counters. It
// runs on its own deadline: the mint's may be what just ran out. A place it
// cannot give back errs on the safe side: it stays taken until its window
// ends.
func (c *Cache) release(ctx context.Context, r *reservation, counts bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LockTTL)
	defer cancel()
	var errs []error
	if r.pending {
		// Past its two windows the slot has lapsed by itself; taking one
		// back then would count against a later window.
		if w := c.pendingWindow(); c.cfg.Now().Before(r.at.Truncate(w).Add(2 * w)) {
			_, err := c.cfg.Store.Count(ctx, pendingCounter, r.at, w, -1)
			errs = append(errs, err)
		}
		r.pending = false
	}
	if counts {
		if c.cfg.Now().Before(r.at.Truncate(c.cfg.MintWindow).Add(c.cfg.MintWindow)) {
			for _, name := range r.counters {
				_, err := c.cfg.Store.Count(ctx, name, r.at, c.cfg.MintWindow, -1)
				errs = append(errs, err)
			}
		}
		r.counters = nil
	}
	if err := errors.Join(errs...); err != nil {
		c.cfg.Logger.Warn("a quota reservation could not be given back; it lapses with its window", "error", err)
	}
}

// reserveRevocation counts a revocation of one of group's tokens against
// the group's budget, or refuses it with a *QuotaError. The returned undo
// gives the place back (the revocation failed).
func (c *Cache) reserveRevocation(ctx context.Context, group string) (undo func(), err error) {
	if c.cfg.MaxGroupRevocations <= 0 {
		return func() {}, nil
	}
	r := &reservation{at: c.cfg.Now()}
	if err := c.take(ctx, r, groupRevocationCounter(group), c.cfg.MaxGroupRevocations); err != nil {
		return nil, c.refused(ctx, r, err, fmt.Sprintf("group %s's limit of %d revocations of its CARTO token per %s",
			group, c.cfg.MaxGroupRevocations, c.cfg.MintWindow))
	}
	return func() { c.release(ctx, r, true) }, nil
}
