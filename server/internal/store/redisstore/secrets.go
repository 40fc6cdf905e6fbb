package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Secret returns the unexpired secret stored under name.
func (s *Store) Secret(ctx context.Context, name string) (store.Secret, bool, error) {
	if err := s.usable(); err != nil {
		return store.Secret{}, false, err
	}
	sealed, err := s.c.Get(ctx, s.key("secret", name)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return store.Secret{}, false, nil
	case err != nil:
		return store.Secret{}, false, s.fail(err)
	}
	sec, err := s.codec.OpenSecret(name, sealed)
	if err != nil {
		return store.Secret{}, false, fmt.Errorf("redis store %s: %w", s.prefix, err)
	}
	if !s.live(sec.ExpiresAt) {
		return store.Secret{}, false, nil
	}
	return sec, true, nil
}

// PutSecret stores a secret under name until its ExpiresAt.
func (s *Store) PutSecret(ctx context.Context, name string, sec store.Secret) error {
	if err := s.usable(); err != nil {
		return err
	}
	k := s.key("secret", name)
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k, s.codec.SealSecret(name, sec), 0)
		p.PExpireAt(ctx, k, expireAt(sec.ExpiresAt))
		return nil
	})
	return s.fail(err)
}
