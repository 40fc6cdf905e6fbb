// Package tokencache keeps the CARTO API access tokens the broker has minted,
// one current token per (group, policy hash), and this replica's view of the
// revoked sessions. A Cache serves tokens from an in-process front cache,
// coalesces concurrent misses into one mint (across replicas, through the
// store's locks), refreshes tokens ahead of expiry in the background, and
// holds minting to the quota guards. What it holds is kept in a store.Store,
// whose feed keeps the views of every replica in step.
package tokencache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

var (
	// ErrQuotaExceeded wraps a description of the guard that refused a mint.
	ErrQuotaExceeded = errors.New("token quota exceeded")
	// ErrNotFound reports a token the broker does not hold for the asking
	// group.
	ErrNotFound = errors.New("token not found")
)

// Upstream mints and deletes tokens (CARTO, through an adapter).
type Upstream interface {
	// Mint creates a token for key that expires at expiresAt.
	Mint(ctx context.Context, key store.Key, expiresAt time.Time) (token string, err error)
	// Delete deletes a token upstream. A token upstream no longer knows is
	// deleted already: Delete returns nil for it.
	Delete(ctx context.Context, token string) error
}

// Config configures a Cache.
type Config struct {
	Store    store.Store
	Upstream Upstream
	Now      func() time.Time
	Logger   *slog.Logger
	// MintTimeout bounds one mint, which runs detached from the callers that
	// wait for it. 30 s when zero.
	MintTimeout time.Duration
	// MaxLiveTokens caps the unexpired tokens the broker holds (0: no cap).
	MaxLiveTokens int
	// MaxMints caps token creations per MintWindow (0: no cap).
	MaxMints   int
	MintWindow time.Duration // 1 h when zero
	// MaxGroupMints caps the creations per MintWindow that one group's
	// callers cause (0: no cap), so that no group spends the others'
	// share of MaxMints. Background refreshes are not counted.
	MaxGroupMints int
	// RefreshReservePercent of MaxLiveTokens and of MaxMints only
	// background refreshes may use: callers' mints stop short of it.
	RefreshReservePercent int
	// MaxGroupRevocations caps, per MintWindow, the revocations of a
	// group's tokens that are counted (Revoker.Unlimited unset); 0: no cap.
	MaxGroupRevocations int
	// MaxStaleness: with a shared store, how long the local views (tokens,
	// revoked sessions) are trusted without news from the store. Past it,
	// requests fail closed. 2 s when zero.
	MaxStaleness time.Duration
	// LockTTL is the mint lock's lifetime, renewed while a mint runs, so a
	// crashed holder blocks the others for at most this long. 10 s when zero.
	LockTTL time.Duration
	// WaitPoll is how often a replica waiting for another's mint looks for
	// the result (one read of the store). 10 ms when zero.
	WaitPoll time.Duration
	// Observer, when set, is told about mints and background refreshes.
	Observer Observer
}

// Observer is told what the cache does, for metrics.
type Observer interface {
	// Minted: this replica created a token upstream.
	Minted()
	// Refreshed: a background refresh ended, well or not.
	Refreshed(ok bool)
}

// Cache hands out one token per key. Hits are served from an in-process
// front cache. Concurrent misses share one mint: within a process through
// singleflight, across replicas through the store's lock. Tokens are replaced
// in the background about half-way through their life and never served
// within a safety margin of their expiry. It also keeps the local view of
// revoked sessions.
type Cache struct {
	cfg     Config
	flight  singleflight.Group // mints, by key
	reads   singleflight.Group // store reads after a front-cache miss, by key
	watched bool               // the store is shared: local views follow its event feed

	mu       sync.RWMutex
	front    map[store.Key]store.Entry
	frontIDs map[string]store.Key    // token id -> key, for evictions by id
	sessions map[string]time.Time    // revoked session -> until
	backoff  map[store.Key]time.Time // no background refresh of key before this

	syncedAt   atomic.Int64 // unix ns of the last store.EventSynced, for shared stores
	needResync atomic.Bool
	lostAt     time.Time // when the feed was lost (store.EventUnavailable), until it is back; apply's alone
}

// refreshBackoff spaces background refresh attempts of a key after a failure.
const refreshBackoff = 30 * time.Second

// New returns a Cache. Call Load before serving, and Run to follow a shared
// store's changes.
func New(cfg Config) *Cache {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.MintTimeout, 30*time.Second)
	def(&cfg.MintWindow, time.Hour)
	def(&cfg.MaxStaleness, 2*time.Second)
	def(&cfg.LockTTL, 10*time.Second)
	def(&cfg.WaitPoll, 10*time.Millisecond)
	_, watched := cfg.Store.(store.Watcher)
	return &Cache{
		cfg:      cfg,
		watched:  watched,
		front:    make(map[store.Key]store.Entry),
		frontIDs: make(map[string]store.Key),
		sessions: make(map[string]time.Time),
		backoff:  make(map[store.Key]time.Time),
	}
}

// Load reads the revoked sessions from the store.
func (c *Cache) Load(ctx context.Context) error {
	revoked, err := c.cfg.Store.RevokedSessions(ctx)
	if err != nil {
		return fmt.Errorf("load revoked sessions: %w", err)
	}
	c.mu.Lock()
	c.sessions = revoked
	c.mu.Unlock()
	return nil
}

// Run follows a shared store's event feed until ctx ends; with a store of
// one process it just waits for ctx.
func (c *Cache) Run(ctx context.Context) error {
	w, ok := c.cfg.Store.(store.Watcher)
	if !ok {
		<-ctx.Done()
		return nil
	}
	err := w.Watch(ctx, c.apply)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// apply brings the local views up to date with one event of the feed.
func (c *Cache) apply(ev store.Event) {
	switch ev.Kind {
	case store.EventEvicted:
		c.mu.Lock()
		c.forgetLocked(ev.TokenID)
		c.mu.Unlock()
	case store.EventSessionRevoked:
		c.mu.Lock()
		if ev.Until.After(c.sessions[ev.SessionID]) {
			c.sessions[ev.SessionID] = ev.Until
		}
		c.mu.Unlock()
	case store.EventResync:
		c.needResync.Store(true)
		c.resync()
	case store.EventSynced:
		// Until a resync has succeeded, news of the feed proves nothing:
		// what was missed before it is still missing.
		if c.needResync.Load() && !c.resync() {
			return
		}
		c.syncedAt.Store(ev.At.UnixNano())
		if !c.lostAt.IsZero() {
			c.cfg.Logger.Info("the shared store answers again", "after", c.cfg.Now().Sub(c.lostAt).Round(time.Millisecond))
			c.lostAt = time.Time{}
		}
	case store.EventUnavailable:
		// Said once per outage: what requests fail closed for, meanwhile.
		c.lostAt = ev.At
		c.cfg.Logger.Warn("waiting for the shared store; requests fail closed until it answers", "error", ev.Err)
	}
}

// resync rebuilds the local views after events may have been missed. The
// front cache is dropped (a missed eviction must not be served). Revoked
// sessions are merged, never replaced: a revocation this replica has seen is
// kept until it expires even if the store lost it (a Redis restarted
// without persistence), and is written back so the other replicas and the
// store learn it again.
func (c *Cache) resync() bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.MaxStaleness)
	defer cancel()
	stored, err := c.cfg.Store.RevokedSessions(ctx)
	if err != nil {
		c.cfg.Logger.Warn("token store resync failed; requests fail closed until it succeeds", "error", err)
		return false
	}
	now := c.cfg.Now()
	c.mu.Lock()
	var lost map[string]time.Time
	for id, until := range c.sessions {
		if !now.Before(until) {
			delete(c.sessions, id)
		} else if stored[id].Before(until) {
			if lost == nil {
				lost = map[string]time.Time{}
			}
			lost[id] = until
		}
	}
	for id, until := range stored {
		if until.After(c.sessions[id]) {
			c.sessions[id] = until
		}
	}
	c.front = make(map[store.Key]store.Entry)
	c.frontIDs = make(map[string]store.Key)
	c.mu.Unlock()
	for id, until := range lost {
		if err := c.cfg.Store.RevokeSession(ctx, id, until); err != nil {
			c.cfg.Logger.Warn("could not restore a revocation the store lost", "error", err)
			return false
		}
	}
	if len(lost) > 0 {
		c.cfg.Logger.Warn("the token store had lost session revocations; restored them", "count", len(lost))
	}
	c.needResync.Store(false)
	return true
}

// fresh reports whether the local views can be trusted: always with a store
// of one process; with a shared one, only shortly after news from it.
func (c *Cache) fresh() error {
	if !c.watched {
		return nil
	}
	synced := time.Unix(0, c.syncedAt.Load())
	if age := c.cfg.Now().Sub(synced); c.syncedAt.Load() == 0 || age > c.cfg.MaxStaleness {
		return fmt.Errorf("%w: no news from the shared store for %s", store.ErrUnavailable, age.Round(time.Millisecond))
	}
	return nil
}

// WaitSynced waits until the local views can be trusted, or ctx ends.
func (c *Cache) WaitSynced(ctx context.Context) error {
	for c.fresh() != nil {
		select {
		case <-ctx.Done():
			return c.fresh()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// RevokeSession records a revoked session, in the store and locally.
func (c *Cache) RevokeSession(ctx context.Context, id string, until time.Time) error {
	if err := c.cfg.Store.RevokeSession(ctx, id, until); err != nil {
		return err
	}
	c.mu.Lock()
	if until.After(c.sessions[id]) {
		c.sessions[id] = until
	}
	c.mu.Unlock()
	return nil
}

// SessionRevoked reports whether a session is revoked. It fails closed: when
// the local view cannot be trusted it returns an error, never "no".
func (c *Cache) SessionRevoked(_ context.Context, id string) (bool, error) {
	if err := c.fresh(); err != nil {
		return false, err
	}
	c.mu.RLock()
	until, ok := c.sessions[id]
	c.mu.RUnlock()
	return ok && c.cfg.Now().Before(until), nil
}

// SafetyMargin is how long before its expiry a token stops being handed out:
// a tenth of its lifetime, at most 5 minutes, so the caller can still use it.
func SafetyMargin(lifetime time.Duration) time.Duration {
	return min(5*time.Minute, lifetime/10)
}

func (c *Cache) servable(e store.Entry, now time.Time) bool {
	return now.Before(e.ExpiresAt.Add(-SafetyMargin(e.ExpiresAt.Sub(e.CreatedAt))))
}

func (c *Cache) remember(e store.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.front[e.Key]; ok {
		delete(c.frontIDs, store.TokenID(old.Token))
	}
	c.front[e.Key] = e
	c.frontIDs[store.TokenID(e.Token)] = e.Key
}

// forgetLocked drops token id from the front cache. Called with mu held.
func (c *Cache) forgetLocked(id string) {
	if key, ok := c.frontIDs[id]; ok {
		delete(c.frontIDs, id)
		if e := c.front[key]; store.TokenID(e.Token) == id {
			delete(c.front, key)
		}
	}
}

// Get returns the token for key, minting one with the given lifetime if there
// is no servable token. The second result tells whether it was minted for
// this call (a miss).
func (c *Cache) Get(ctx context.Context, key store.Key, lifetime time.Duration) (store.Entry, bool, error) {
	if err := c.fresh(); err != nil {
		return store.Entry{}, false, err
	}
	now := c.cfg.Now()
	c.mu.RLock()
	e, ok := c.front[key]
	c.mu.RUnlock()
	if !ok || !c.servable(e, now) {
		var err error
		if e, ok, err = c.read(ctx, key, now); err != nil {
			return store.Entry{}, false, err
		}
	}
	if ok && c.servable(e, now) {
		if !now.Before(e.RefreshAt) && c.refreshDue(key, now) {
			c.mint(ctx, key, lifetime, e.Token) // in the background
		}
		return e, false, nil
	}
	stale := ""
	if ok {
		stale = e.Token
	}
	select {
	case r := <-c.mint(ctx, key, lifetime, stale):
		if r.Err != nil {
			return store.Entry{}, false, r.Err
		}
		return r.Val.(store.Entry), true, nil
	case <-ctx.Done():
		return store.Entry{}, false, ctx.Err()
	}
}

// read looks key up in the store after a front-cache miss. Concurrent
// readers of one key share one store call: a burst of callers of a cold
// group costs the store one read per replica, not one per caller.
func (c *Cache) read(ctx context.Context, key store.Key, now time.Time) (store.Entry, bool, error) {
	detached := context.WithoutCancel(ctx)
	ch := c.reads.DoChan(key.String(), func() (any, error) {
		rctx, cancel := context.WithTimeout(detached, c.cfg.MintTimeout)
		defer cancel()
		e, ok, err := c.cfg.Store.Current(rctx, key)
		if err != nil {
			return nil, fmt.Errorf("read token cache: %w", err)
		}
		if !ok {
			return nil, nil
		}
		if c.servable(e, now) {
			c.remember(e)
		}
		return e, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil || r.Val == nil {
			return store.Entry{}, false, r.Err
		}
		return r.Val.(store.Entry), true, nil
	case <-ctx.Done():
		return store.Entry{}, false, ctx.Err()
	}
}

func (c *Cache) refreshDue(key store.Key, now time.Time) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return !now.Before(c.backoff[key])
}

// mint starts the mint of key unless one is running in this process, and
// returns its result. It runs detached from ctx: the caller that started it
// may give up without failing the others waiting on it. replacing is the
// token the caller saw current; a servable token other than it, minted
// meanwhile here or by another replica, is returned instead of minting.
func (c *Cache) mint(ctx context.Context, key store.Key, lifetime time.Duration, replacing string) <-chan singleflight.Result {
	detached := context.WithoutCancel(ctx)
	return c.flight.DoChan(key.String(), func() (any, error) {
		mctx, cancel := context.WithTimeout(detached, c.cfg.MintTimeout)
		defer cancel()
		e, minted, err := c.mintAcrossReplicas(mctx, key, lifetime, replacing)
		if o := c.cfg.Observer; o != nil {
			if minted {
				o.Minted()
			}
			if replacing != "" {
				o.Refreshed(err == nil)
			}
		}
		c.mu.Lock()
		if err != nil {
			c.backoff[key] = c.cfg.Now().Add(refreshBackoff)
		} else {
			delete(c.backoff, key)
		}
		c.mu.Unlock()
		if err != nil {
			c.cfg.Logger.Warn("token mint failed", "group", key.Group, "policy", shortHash(key.PolicyHash), "error", err)
			return store.Entry{}, err
		}
		c.remember(e)
		return e, nil
	})
}

// mintAcrossReplicas mints under the store's lock for key. A replica that
// finds the lock held waits for the holder's token to appear in the store;
// if the holder dies, its lock expires and a waiter takes over.
// The second result tells whether this replica minted the token (rather
// than finding another's).
func (c *Cache) mintAcrossReplicas(ctx context.Context, key store.Key, lifetime time.Duration, replacing string) (store.Entry, bool, error) {
	lockName := "mint:" + store.TokenID(key.String())[:32]
	for {
		if e, ok, err := c.newerThan(ctx, key, replacing); err != nil || ok {
			return e, false, err
		}
		lock, err := c.cfg.Store.TryLock(ctx, lockName, c.cfg.LockTTL)
		switch {
		case err == nil:
			e, minted, err := c.mintLocked(ctx, lock, key, lifetime, replacing)
			if rerr := lock.Release(context.WithoutCancel(ctx)); rerr != nil {
				c.cfg.Logger.Warn("mint lock release failed; it expires by itself", "error", rerr)
			}
			return e, minted, err
		case !errors.Is(err, store.ErrLocked):
			return store.Entry{}, false, err
		}
		select {
		case <-ctx.Done():
			return store.Entry{}, false, ctx.Err()
		case <-time.After(c.cfg.WaitPoll):
		}
	}
}

// newerThan returns the key's stored token if it is servable and is not the
// one being replaced.
func (c *Cache) newerThan(ctx context.Context, key store.Key, replacing string) (store.Entry, bool, error) {
	e, ok, err := c.cfg.Store.Current(ctx, key)
	if err != nil {
		return store.Entry{}, false, fmt.Errorf("read token cache: %w", err)
	}
	return e, ok && e.Token != replacing && c.servable(e, c.cfg.Now()), nil
}

func (c *Cache) mintLocked(ctx context.Context, lock store.Lock, key store.Key, lifetime time.Duration, replacing string) (store.Entry, bool, error) {
	// The previous holder may have stored a token just before releasing.
	if e, ok, err := c.newerThan(ctx, key, replacing); err != nil || ok {
		return e, false, err
	}
	// Keep the lock while the quota guards and CARTO answer, however
	// slowly: a lock that expired meanwhile would let a second replica mint.
	stopRenew := c.renew(ctx, lock)
	defer stopRenew()
	res, err := c.reserve(ctx, key, replacing != "")
	if err != nil {
		return store.Entry{}, false, err
	}

	created := c.cfg.Now()
	expires := created.Add(lifetime).Truncate(time.Second)
	tok, err := c.cfg.Upstream.Mint(ctx, key, expires)
	if err != nil {
		// Counted as not created: CARTO refused, or did not answer (a
		// creation that happened unseen is an orphan reconciliation deletes).
		c.release(ctx, res, true)
		return store.Entry{}, false, err
	}
	// Refresh at half-life ±10%, so keys minted together spread their refreshes.
	jitter := 0.45 + 0.1*rand.Float64()
	e := store.Entry{
		Key:       key,
		Token:     tok,
		CreatedAt: created,
		ExpiresAt: expires,
		RefreshAt: created.Add(time.Duration(float64(lifetime) * jitter)),
	}
	// From here the token counts as created, whatever happens to it.
	if err := c.put(ctx, e, res); err != nil {
		// A token the store does not know would be live at CARTO with no one
		// to serve or revoke it: delete it rather than leave an orphan, with
		// a deadline of its own (ctx's may be what just ran out). If even
		// that fails, reconciliation finds it by its name.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.MintTimeout)
		defer cancel()
		if derr := c.cfg.Upstream.Delete(dctx, tok); derr != nil {
			c.cfg.Logger.Error("minted token could not be stored nor deleted upstream", "group", key.Group, "error", derr)
		}
		return store.Entry{}, true, fmt.Errorf("store minted token: %w", err)
	}
	return e, true, nil
}

// renew extends lock every third of its lifetime until the returned stop is
// called.
func (c *Cache) renew(ctx context.Context, lock store.Lock) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.cfg.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := lock.Extend(ctx, c.cfg.LockTTL); err != nil {
					c.cfg.Logger.Warn("mint lock could not be extended", "error", err)
					return
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// Revoker is who asks for a revocation.
type Revoker struct {
	// May reports whether the caller may revoke the tokens of group.
	May func(group string) bool
	// Unlimited revocations are not counted against the group's budget
	// (MaxGroupRevocations): an admin's.
	Unlimited bool
}

// Revoke deletes token upstream and forgets it, if it is a live token of a
// group the caller may revoke; otherwise it returns ErrNotFound and touches
// nothing. Unless by is Unlimited, the revocation is counted against the
// group's budget first, and refused with a *QuotaError past it: each one
// makes the group's next call mint. When the upstream delete fails the
// token stays (it is still valid upstream), the revocation is not counted,
// and the error is returned, so the caller can retry.
func (c *Cache) Revoke(ctx context.Context, token string, by Revoker) (store.Entry, error) {
	e, ok, err := c.cfg.Store.ByToken(ctx, token)
	if err != nil {
		return store.Entry{}, fmt.Errorf("read token cache: %w", err)
	}
	if !ok || !by.May(e.Key.Group) {
		return store.Entry{}, ErrNotFound
	}
	undo := func() {}
	if !by.Unlimited {
		if undo, err = c.reserveRevocation(ctx, e.Key.Group); err != nil {
			return store.Entry{}, err
		}
	}
	if err := c.Evict(ctx, e); err != nil {
		undo()
		return store.Entry{}, err
	}
	return e, nil
}

// Held is a token the broker holds and whether it is its key's current one.
type Held struct {
	store.Entry
	Current bool
}

// Held lists the unexpired tokens the broker holds.
func (c *Cache) Held(ctx context.Context) ([]Held, error) {
	entries, err := c.cfg.Store.Entries(ctx)
	if err != nil {
		return nil, fmt.Errorf("list held tokens: %w", err)
	}
	current := map[store.Key]string{}
	out := make([]Held, len(entries))
	for i, e := range entries {
		cur, seen := current[e.Key]
		if !seen {
			ce, ok, err := c.cfg.Store.Current(ctx, e.Key)
			if err != nil {
				return nil, fmt.Errorf("list held tokens: %w", err)
			}
			if ok {
				cur = ce.Token
			}
			current[e.Key] = cur
		}
		out[i] = Held{Entry: e, Current: e.Token == cur}
	}
	return out, nil
}

// Evict deletes an entry's token upstream, then forgets it here, in the
// store and (through the store's feed) on every replica.
func (c *Cache) Evict(ctx context.Context, e store.Entry) error {
	if err := c.cfg.Upstream.Delete(ctx, e.Token); err != nil {
		return err
	}
	if err := c.cfg.Store.Remove(ctx, e.Token); err != nil {
		return fmt.Errorf("forget deleted token: %w", err)
	}
	c.mu.Lock()
	c.forgetLocked(store.TokenID(e.Token))
	c.mu.Unlock()
	return nil
}

func shortHash(h string) string { return h[:min(12, len(h))] }

// Ready reports whether the cache can serve: its views are fresh and the
// store answers.
func (c *Cache) Ready(ctx context.Context) error {
	if err := c.fresh(); err != nil {
		return err
	}
	_, err := c.cfg.Store.Count(ctx, "readiness", c.cfg.Now(), time.Minute, 0)
	return err
}

// HasTokens reports whether the broker holds any token to serve.
func (c *Cache) HasTokens(ctx context.Context) bool {
	c.mu.RLock()
	n := len(c.front)
	c.mu.RUnlock()
	if n > 0 {
		return true
	}
	entries, err := c.cfg.Store.Entries(ctx)
	return err == nil && len(entries) > 0
}
