package tokencache

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Upstream mints and deletes tokens (CARTO, through an adapter).
type Upstream interface {
	// Mint creates a token for key that expires at expiresAt.
	Mint(ctx context.Context, key Key, expiresAt time.Time) (token string, err error)
	// Delete deletes a token upstream. A token upstream no longer knows is
	// deleted already: Delete returns nil for it.
	Delete(ctx context.Context, token string) error
}

// Config configures a Cache.
type Config struct {
	Store    Store
	Upstream Upstream
	Now      func() time.Time
	Logger   *slog.Logger
	// MintTimeout bounds one mint, which runs detached from the callers that
	// wait for it. 30 s when zero.
	MintTimeout time.Duration
}

// Cache hands out one token per key, minting on a miss. Concurrent misses
// of a key share one mint; tokens are replaced in the background about
// half-way through their life and never served within a safety margin of
// their expiry.
type Cache struct {
	cfg    Config
	flight singleflight.Group

	mu      sync.Mutex
	backoff map[Key]time.Time // no background refresh of key before this
}

// refreshBackoff spaces background refresh attempts of a key after a failure.
const refreshBackoff = 30 * time.Second

// New returns a Cache.
func New(cfg Config) *Cache {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MintTimeout <= 0 {
		cfg.MintTimeout = 30 * time.Second
	}
	return &Cache{cfg: cfg, backoff: make(map[Key]time.Time)}
}

// SafetyMargin is how long before its expiry a token stops being handed out:
// a tenth of its lifetime, at most 5 minutes, so the caller can still use it.
func SafetyMargin(lifetime time.Duration) time.Duration {
	return min(5*time.Minute, lifetime/10)
}

func (c *Cache) servable(e Entry, now time.Time) bool {
	return now.Before(e.ExpiresAt.Add(-SafetyMargin(e.ExpiresAt.Sub(e.CreatedAt))))
}

// Get returns the token for key, minting one with the given lifetime if there
// is no servable token. The second result tells whether it was minted for
// this call (a miss).
func (c *Cache) Get(ctx context.Context, key Key, lifetime time.Duration) (Entry, bool, error) {
	e, ok, err := c.cfg.Store.Current(ctx, key)
	if err != nil {
		return Entry{}, false, fmt.Errorf("read token cache: %w", err)
	}
	now := c.cfg.Now()
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
			return Entry{}, false, r.Err
		}
		return r.Val.(Entry), true, nil
	case <-ctx.Done():
		return Entry{}, false, ctx.Err()
	}
}

func (c *Cache) refreshDue(key Key, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !now.Before(c.backoff[key])
}

// mint starts the mint of key unless one is running, and returns its result.
// It runs detached from ctx: the caller that started it may give up without
// failing the others waiting on it. replacing is the token the caller saw
// current; if the store already holds another, someone minted meanwhile and
// that one is returned instead.
func (c *Cache) mint(ctx context.Context, key Key, lifetime time.Duration, replacing string) <-chan singleflight.Result {
	detached := context.WithoutCancel(ctx)
	return c.flight.DoChan(key.String(), func() (any, error) {
		mctx, cancel := context.WithTimeout(detached, c.cfg.MintTimeout)
		defer cancel()
		if e, ok, err := c.cfg.Store.Current(mctx, key); err == nil && ok && e.Token != replacing && c.servable(e, c.cfg.Now()) {
			return e, nil
		}
		e, err := c.mintNow(mctx, key, lifetime)
		c.mu.Lock()
		if err != nil {
			c.backoff[key] = c.cfg.Now().Add(refreshBackoff)
		} else {
			delete(c.backoff, key)
		}
		c.mu.Unlock()
		if err != nil {
			c.cfg.Logger.Warn("token mint failed", "group", key.Group, "policy", key.PolicyHash[:min(12, len(key.PolicyHash))], "error", err)
		}
		return e, err
	})
}

func (c *Cache) mintNow(ctx context.Context, key Key, lifetime time.Duration) (Entry, error) {
	created := c.cfg.Now()
	expires := created.Add(lifetime).Truncate(time.Second)
	tok, err := c.cfg.Upstream.Mint(ctx, key, expires)
	if err != nil {
		return Entry{}, err
	}
	// Refresh at half-life ±10%, so keys minted together spread their refreshes.
	jitter := 0.45 + 0.1*rand.Float64()
	e := Entry{
		Key:       key,
		Token:     tok,
		CreatedAt: created,
		ExpiresAt: expires,
		RefreshAt: created.Add(time.Duration(float64(lifetime) * jitter)),
	}
	if err := c.cfg.Store.Put(ctx, e); err != nil {
		// A token the store does not know would be live at CARTO with no one
		// to serve or revoke it: delete it rather than leave an orphan, with
		// a deadline of its own (ctx's may be what just ran out).
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.MintTimeout)
		defer cancel()
		if derr := c.cfg.Upstream.Delete(dctx, tok); derr != nil {
			c.cfg.Logger.Error("minted token could not be stored nor deleted upstream", "group", key.Group, "error", derr)
		}
		return Entry{}, fmt.Errorf("store minted token: %w", err)
	}
	return e, nil
}

// Revoke deletes token upstream and forgets it, if it is a live token of
// group; otherwise it returns ErrNotFound and touches nothing. When the
// upstream delete fails the token stays cached (it is still valid upstream)
// and the error is returned, so the caller can retry.
func (c *Cache) Revoke(ctx context.Context, group, token string) (Entry, error) {
	e, ok, err := c.cfg.Store.ByToken(ctx, token)
	if err != nil {
		return Entry{}, fmt.Errorf("read token cache: %w", err)
	}
	if !ok || e.Key.Group != group {
		return Entry{}, ErrNotFound
	}
	if err := c.cfg.Upstream.Delete(ctx, token); err != nil {
		return Entry{}, err
	}
	if err := c.cfg.Store.Remove(ctx, token); err != nil {
		return Entry{}, fmt.Errorf("forget revoked token: %w", err)
	}
	return e, nil
}
