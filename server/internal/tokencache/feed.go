package tokencache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

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
		c.cfg.Logger.Debug("token eviction applied from the shared store")
	case store.EventSessionRevoked:
		c.mu.Lock()
		if ev.Until.After(c.sessions[ev.SessionID]) {
			c.sessions[ev.SessionID] = ev.Until
		}
		c.mu.Unlock()
		c.cfg.Logger.Debug("session revocation applied from the shared store")
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
