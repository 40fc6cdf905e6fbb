package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tokenbroker/tokenbroker/server/internal/config"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/boltstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/redisstore"
)

// openStore opens the configured token store.
func openStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	switch cfg.Store.Kind {
	case config.StoreMemory:
		return memstore.New(memstore.Config{}), nil
	case config.StoreBolt:
		s, err := boltstore.Open(boltstore.Config{Path: cfg.Store.Path, Key: cfg.Store.Key})
		if errors.Is(err, store.ErrWrongKey) {
			return nil, explained{fmt.Sprintf("TOKENBROKER_STORE_KEY does not open the token store %s: it was made with another key: set the key it was made with, or point TOKENBROKER_DB at a new file", cfg.Store.Path), err}
		}
		if err != nil {
			return nil, fmt.Errorf("token store (bbolt, TOKENBROKER_DB): %w", err)
		}
		return s, nil
	case config.StoreRedis:
		client, err := redisstore.NewClient(cfg.Store.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("token store (redis): %w", err)
		}
		s, err := redisstore.Open(ctx, redisstore.Config{Client: client, Prefix: "tokenbroker:" + cfg.Deployment, Key: cfg.Store.Key})
		if err != nil {
			client.Close()
			return nil, redisOpenError(cfg, err)
		}
		return redisWithClient{Store: s, client: client}, nil
	}
	return nil, fmt.Errorf("unknown token store %q", cfg.Store.Kind)
}

// redisOpenError says what to change when the Redis store cannot be
// opened, naming where REDIS_URL points but none of its credentials.
func redisOpenError(cfg config.Config, err error) error {
	u, _ := url.Parse(cfg.Store.RedisURL) // NewClient has parsed it
	q := u.Query()
	servers := strings.Join(append([]string{u.Host}, q["addr"]...), ", ")
	var msg string
	switch {
	case errors.Is(err, store.ErrWrongKey):
		msg = fmt.Sprintf("TOKENBROKER_STORE_KEY does not open the token store of deployment %q in Redis at %s: it was made with another key: set the key it was made with, or use another TOKENBROKER_DEPLOYMENT or Redis database", cfg.Deployment, servers)
	case q.Has("master_name") && errors.Is(err, redis.Nil):
		msg = fmt.Sprintf("REDIS_URL: the Sentinels at %s know no master named %q: set master_name to the name in their `sentinel monitor` line", servers, q.Get("master_name"))
	case redis.IsAuthError(err):
		msg = fmt.Sprintf("REDIS_URL: Redis at %s refused the credentials (%v): set the right user and password in REDIS_URL (redis://user:password@host:port)", servers, err)
	case q.Has("master_name"):
		msg = fmt.Sprintf("REDIS_URL: cannot reach Redis through the Sentinels at %s (%v): check that they run and monitor master %q, or point REDIS_URL elsewhere", servers, err, q.Get("master_name"))
	case errors.Is(err, store.ErrUnavailable):
		msg = fmt.Sprintf("REDIS_URL: cannot reach Redis at %s (%v): check that it runs, or point REDIS_URL at a running server", servers, err)
	default:
		msg = fmt.Sprintf("REDIS_URL: cannot open the token store in Redis at %s: %v", servers, err)
	}
	// What go-redis reports carries no password, but make sure.
	for name, vs := range q {
		if strings.Contains(name, "password") {
			msg = redact(msg, vs...)
		}
	}
	if p, ok := u.User.Password(); ok {
		msg = redact(msg, p)
	}
	return explained{msg, err}
}

// explained is err with a message of its own, for the operator: what to
// change, and no secret.
type explained struct {
	msg string
	err error
}

func (e explained) Error() string { return e.msg }
func (e explained) Unwrap() error { return e.err }

func redact(s string, secrets ...string) string {
	for _, x := range secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, "xxxxx")
		}
	}
	return s
}

// redisWithClient closes the Redis client the store was opened with.
type redisWithClient struct {
	*redisstore.Store
	client redis.UniversalClient
}

func (r redisWithClient) Close() error {
	return errors.Join(r.Store.Close(), r.client.Close())
}
