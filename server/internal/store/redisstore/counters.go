package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Count adds delta to counter name in the window of length window that
// contains at: INCRBY, expiring two windows later (a window is only asked
// about while it or the next one runs).
func (s *Store) Count(ctx context.Context, name string, at time.Time, window time.Duration, delta int64) (int64, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	if window < time.Millisecond {
		return 0, fmt.Errorf("redis store: counter window %v is shorter than a millisecond", window)
	}
	// The name is hashed: it may hold any byte (a username, an address).
	sum := sha256.Sum256([]byte(name))
	k := s.key("count", hex.EncodeToString(sum[:16]), ms(at.Truncate(window)))
	var n *redis.IntCmd
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.IncrBy(ctx, k, delta)
		p.PExpire(ctx, k, 2*window)
		return nil
	})
	if err != nil {
		return 0, s.fail(err)
	}
	return n.Val(), nil
}
