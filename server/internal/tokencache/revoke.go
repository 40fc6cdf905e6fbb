package tokencache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// ErrNotFound reports a token the broker does not hold for the asking group.
var ErrNotFound = errors.New("token not found")

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
