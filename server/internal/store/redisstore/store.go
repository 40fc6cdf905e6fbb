// Package redisstore is the store.Store that several broker replicas
// share through one Redis (a single server, Sentinel or Cluster). Tokens and
// secrets are sealed with the store key (store.Codec) before they reach
// Redis; locks and creation counters live in Redis so that replicas do not
// mint twice; a Redis stream carries evictions and session revocations to
// every replica (Watch).
//
// Data model. Every key starts with the hash tag "{<prefix>}", so that all of
// a store's keys sit in one Cluster slot, where MULTI and multi-key scripts
// work. Expiries are absolute (PEXPIREAT, unix ms), so Redis forgets what
// expired by itself; reads check expiry again with Config.Now.
//
//	{p}:keycheck          string  Codec.KeyCheck: opening with another key fails
//	{p}:tok:<token id>    string  Codec.SealEntry, PEXPIREAT the entry's ExpiresAt
//	{p}:cur:<key hash>    string  token id of the key's current entry, PEXPIREAT
//	                              that entry's ExpiresAt (key hash: see curKey)
//	{p}:toks              zset    token id, scored by ExpiresAt (unix ms): Entries
//	{p}:revs              zset    revoked session id, scored by until (unix ms)
//	{p}:secret:<name>     string  Codec.SealSecret, PEXPIREAT the secret's ExpiresAt
//	{p}:lock:<name>       string  random owner, SET NX PX ttl
//	{p}:count:<h>:<ms>    string  counter (h: half the SHA-256 of its name) in the window starting at ms,
//	                              PEXPIRE two windows
//	{p}:events            stream  kind=evicted id=<token id>, or
//	                              kind=session id=<session id> until=<unix ms>;
//	                              trimmed to the last hour (MINID ~)
//
// Token values, secrets and passwords never appear in key names or errors:
// tokens are indexed by store.TokenID. Redis 6.2 or later is required
// (XADD MINID).
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenbroker/tokenbroker/server/internal/seal"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Config configures a Store.
type Config struct {
	// Client is the connection to Redis (see NewClient). It belongs to the
	// caller: Store.Close does not close it.
	Client redis.UniversalClient
	// Prefix namespaces the store's keys; "tb" when empty. It may not hold
	// '{' or '}' (it becomes the Cluster hash tag).
	Prefix string
	// Key is the 32-byte store key that seals tokens and secrets.
	Key []byte
	// Now is time.Now when nil. It decides expiry on reads and the times
	// written to Redis; Redis itself expires keys by its own clock.
	Now func() time.Time
}

// eventsKeep is how long the event stream keeps an event: watchers read it
// within a second, and resync after any longer gap.
const eventsKeep = time.Hour

// errClosed is returned by every method called after Close.
var errClosed = fmt.Errorf("%w: the redis store is closed", store.ErrUnavailable)

// Store is a store.Store and store.Watcher kept in Redis. It is
// safe for concurrent use, and any number of Stores (in any number of
// processes) may share one prefix.
type Store struct {
	c      redis.UniversalClient
	prefix string // "{<Prefix>}:"
	codec  store.Codec
	now    func() time.Time
	closed atomic.Bool
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Watcher = (*Store)(nil)
)

// Open checks that Redis answers (an error wrapping store.ErrUnavailable
// if not) and that the data under the prefix was sealed with cfg.Key
// (store.ErrWrongKey if not), recording the key check on first use.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("redis store: no client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "tb"
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("redis store: prefix %q may not contain '{' or '}'", cfg.Prefix)
	}
	box, err := seal.New(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	s := &Store{
		c:      cfg.Client,
		prefix: "{" + cfg.Prefix + "}:",
		codec:  store.NewCodec(box),
		now:    cfg.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.c.Ping(ctx).Err(); err != nil {
		return nil, s.fail(err)
	}
	if err := s.checkKey(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// checkKey verifies the stored key check, or records one if there is none.
func (s *Store) checkKey(ctx context.Context) error {
	for {
		stored, err := s.c.Get(ctx, s.key("keycheck")).Bytes()
		switch {
		case err == nil:
			if err := s.codec.CheckKey(stored); err != nil {
				return fmt.Errorf("redis store %s: %w", s.prefix, err)
			}
			return nil
		case !errors.Is(err, redis.Nil):
			return s.fail(err)
		}
		set, err := s.c.SetNX(ctx, s.key("keycheck"), s.codec.KeyCheck(), 0).Result()
		if err != nil {
			return s.fail(err)
		}
		if set {
			return nil
		}
		// Another replica recorded its check first: verify that one.
	}
}

// Close marks the store closed; later calls fail with an error wrapping
// store.ErrUnavailable. The client is the caller's to close.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *Store) usable() error {
	if s.closed.Load() {
		return errClosed
	}
	return nil
}

// fail reports a client error as the store being unavailable.
func (s *Store) fail(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: redis: %w", store.ErrUnavailable, err)
}

func (s *Store) key(parts ...string) string { return s.prefix + strings.Join(parts, ":") }

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// expireAt is t for PEXPIREAT; times at or before the epoch (the zero
// time) become 1 ms after it, already past, rather than invalid.
func expireAt(t time.Time) time.Time {
	if t.UnixMilli() < 1 {
		return time.UnixMilli(1)
	}
	return t
}

// minEventID is the MINID that trims events older than eventsKeep.
func (s *Store) minEventID() string { return ms(s.now().Add(-eventsKeep)) }
