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
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
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
