package tokencache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// refreshBackoff spaces background refresh attempts of a key after a failure.
const refreshBackoff = 30 * time.Second

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

func shortHash(h string) string { return h[:min(12, len(h))] }
