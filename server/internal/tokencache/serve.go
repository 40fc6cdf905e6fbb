package tokencache

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

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
