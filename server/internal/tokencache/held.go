package tokencache

import (
	"context"
	"fmt"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

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
