package tokencache

import (
	"context"
	"fmt"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Lookup returns the entry of a token the broker holds and that has not
// expired, current or replaced by a refresh (browsers keep the token they
// were given until it ends). It reads the store, not the front cache, so a
// revocation on any replica counts at once.
func (c *Cache) Lookup(ctx context.Context, token string) (store.Entry, bool, error) {
	if token == "" {
		return store.Entry{}, false, nil
	}
	e, ok, err := c.cfg.Store.ByToken(ctx, token)
	if err != nil {
		return store.Entry{}, false, fmt.Errorf("read token cache: %w", err)
	}
	if !ok || !c.cfg.Now().Before(e.ExpiresAt) {
		return store.Entry{}, false, nil
	}
	return e, true, nil
}
