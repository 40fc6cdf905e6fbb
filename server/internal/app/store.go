package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tokenbroker/tokenbroker/server/internal/config"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache/boltstore"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache/redisstore"
)

// openStore opens the configured token store.
func openStore(ctx context.Context, cfg config.Config) (tokencache.Store, error) {
	switch cfg.Store.Kind {
	case config.StoreMemory:
		return tokencache.NewMemory(nil), nil
	case config.StoreBolt:
		s, err := boltstore.Open(boltstore.Options{Path: cfg.Store.Path, Key: cfg.Store.Key})
		if err != nil {
			return nil, fmt.Errorf("token store (bbolt): %w", err)
		}
		return s, nil
	case config.StoreRedis:
		client, err := redisstore.NewClient(cfg.Store.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("token store (redis): %w", err)
		}
		s, err := redisstore.Open(ctx, redisstore.Options{Client: client, Prefix: "tokenbroker:" + cfg.Deployment, Key: cfg.Store.Key})
		if err != nil {
			client.Close()
			return nil, fmt.Errorf("token store (redis): %w", err)
		}
		return redisWithClient{Store: s, client: client}, nil
	}
	return nil, fmt.Errorf("unknown token store %q", cfg.Store.Kind)
}

// redisWithClient closes the Redis client the store was opened with.
type redisWithClient struct {
	*redisstore.Store
	client redis.UniversalClient
}

func (r redisWithClient) Close() error {
	return errors.Join(r.Store.Close(), r.client.Close())
}
