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
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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

// entriesBatch is how many entries Entries fetches per MGET.
const entriesBatch = 500

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

// curKey names the current pointer of k. Group and policy hash are
// length-prefixed, not separated, so that no group can pass for another key;
// hashing keeps group names out of key names.
func (s *Store) curKey(k store.Key) string {
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, uint64(len(k.Group)))
	h.Write([]byte(k.Group))
	h.Write([]byte(k.PolicyHash))
	return s.key("cur", hex.EncodeToString(h.Sum(nil)))
}

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

// entry opens the entry stored under token id, if any.
func (s *Store) entry(ctx context.Context, id string) (store.Entry, bool, error) {
	sealed, err := s.c.Get(ctx, s.key("tok", id)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return store.Entry{}, false, nil
	case err != nil:
		return store.Entry{}, false, s.fail(err)
	}
	e, err := s.codec.OpenEntry(id, sealed)
	if err != nil {
		return store.Entry{}, false, fmt.Errorf("redis store %s: %w", s.prefix, err)
	}
	return e, true, nil
}

func (s *Store) live(t time.Time) bool { return s.now().Before(t) }

// Current returns the unexpired entry served for key, if any.
func (s *Store) Current(ctx context.Context, key store.Key) (store.Entry, bool, error) {
	if err := s.usable(); err != nil {
		return store.Entry{}, false, err
	}
	id, err := s.c.Get(ctx, s.curKey(key)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return store.Entry{}, false, nil
	case err != nil:
		return store.Entry{}, false, s.fail(err)
	}
	// A pointer to a record that is gone (removed, expired) means none.
	e, ok, err := s.entry(ctx, id)
	if err != nil || !ok || !s.live(e.ExpiresAt) {
		return store.Entry{}, false, err
	}
	// Pointers are not sealed: one altered in Redis must not serve a token
	// minted for another group or policy.
	if e.Key != key {
		return store.Entry{}, false, fmt.Errorf("redis store %s: the current token of a key is recorded for another key: the data was altered", s.prefix)
	}
	return e, true, nil
}

// Put records e and makes it current for its key, in one MULTI; the entry it
// replaces stays until it expires.
func (s *Store) Put(ctx context.Context, e store.Entry) error {
	if err := s.usable(); err != nil {
		return err
	}
	id := store.TokenID(e.Token)
	tok, cur, toks := s.key("tok", id), s.curKey(e.Key), s.key("toks")
	exp := expireAt(e.ExpiresAt)
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, tok, s.codec.SealEntry(e), 0)
		p.PExpireAt(ctx, tok, exp)
		p.Set(ctx, cur, id, 0)
		p.PExpireAt(ctx, cur, exp)
		p.ZAdd(ctx, toks, redis.Z{Score: float64(e.ExpiresAt.UnixMilli()), Member: id})
		p.ZRemRangeByScore(ctx, toks, "-inf", ms(s.now()))
		return nil
	})
	return s.fail(err)
}

// ByToken returns the unexpired entry holding token, current or replaced.
func (s *Store) ByToken(ctx context.Context, token string) (store.Entry, bool, error) {
	if err := s.usable(); err != nil {
		return store.Entry{}, false, err
	}
	e, ok, err := s.entry(ctx, store.TokenID(token))
	if err != nil || !ok || !s.live(e.ExpiresAt) {
		return store.Entry{}, false, err
	}
	return e, true, nil
}

// removeScript deletes an entry, clears its key's current pointer only if
// that still points to it (a newer Put may have replaced it), and tells the
// watchers.
//
// KEYS: tok, toks, events[, cur]. ARGV: token id, MINID for the stream.
var removeScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if KEYS[4] and redis.call('GET', KEYS[4]) == ARGV[1] then
	redis.call('DEL', KEYS[4])
end
redis.call('XADD', KEYS[3], 'MINID', '~', ARGV[2], '*', 'kind', 'evicted', 'id', ARGV[1])
return 1
`)

// Remove forgets the entry holding token and, atomically, appends an
// eviction to the event feed. The eviction is sent even for a token the
// store no longer holds: other replicas may still serve it from memory.
func (s *Store) Remove(ctx context.Context, token string) error {
	if err := s.usable(); err != nil {
		return err
	}
	id := store.TokenID(token)
	keys := []string{s.key("tok", id), s.key("toks"), s.key("events")}
	// The record names its key (hence its current pointer). An unreadable
	// record is dropped anyway; a pointer left to it leads nowhere.
	if e, ok, err := s.entry(ctx, id); ok {
		keys = append(keys, s.curKey(e.Key))
	} else if errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return s.fail(removeScript.Run(ctx, s.c, keys, id, s.minEventID()).Err())
}

// Entries returns every unexpired entry, current or replaced, and drops the
// expired ones from the index.
func (s *Store) Entries(ctx context.Context) ([]store.Entry, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	now := s.now()
	toks := s.key("toks")
	if err := s.c.ZRemRangeByScore(ctx, toks, "-inf", ms(now)).Err(); err != nil {
		return nil, s.fail(err)
	}
	ids, err := s.c.ZRangeByScore(ctx, toks, &redis.ZRangeBy{Min: "(" + ms(now), Max: "+inf"}).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	out := make([]store.Entry, 0, len(ids))
	for len(ids) > 0 {
		batch := ids[:min(len(ids), entriesBatch)]
		ids = ids[len(batch):]
		keys := make([]string, len(batch))
		for i, id := range batch {
			keys[i] = s.key("tok", id)
		}
		vals, err := s.c.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, s.fail(err)
		}
		for i, v := range vals {
			sealed, ok := v.(string)
			if !ok {
				continue // removed or expired since the index was read
			}
			e, err := s.codec.OpenEntry(batch[i], []byte(sealed))
			if err != nil {
				return nil, fmt.Errorf("redis store %s: %w", s.prefix, err)
			}
			if now.Before(e.ExpiresAt) {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// revokeScript records a revocation, keeping the later time if the session
// was already revoked, drops past revocations, and tells the watchers the
// time that holds. It returns that time.
//
// KEYS: revs, events. ARGV: session id, until (ms), now (ms), MINID.
var revokeScript = redis.NewScript(`
local untilms = ARGV[2]
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if old and tonumber(old) >= tonumber(untilms) then
	untilms = old
else
	redis.call('ZADD', KEYS[1], untilms, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[4], '*', 'kind', 'session', 'id', ARGV[1], 'until', untilms)
return untilms
`)

// RevokeSession records that session id is revoked until the given time
// (keeping a later time already recorded) and, atomically, appends the
// revocation to the event feed.
func (s *Store) RevokeSession(ctx context.Context, id string, until time.Time) error {
	if err := s.usable(); err != nil {
		return err
	}
	keys := []string{s.key("revs"), s.key("events")}
	return s.fail(revokeScript.Run(ctx, s.c, keys, id, ms(until), ms(s.now()), s.minEventID()).Err())
}

// RevokedSessions returns every revocation not yet past its time.
func (s *Store) RevokedSessions(ctx context.Context) (map[string]time.Time, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	zs, err := s.c.ZRangeByScoreWithScores(ctx, s.key("revs"), &redis.ZRangeBy{Min: "(" + ms(s.now()), Max: "+inf"}).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	out := make(map[string]time.Time, len(zs))
	for _, z := range zs {
		id, ok := z.Member.(string)
		if !ok {
			continue
		}
		out[id] = time.UnixMilli(int64(z.Score))
	}
	return out, nil
}

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

// TryLock takes the lock name for ttl (at least a millisecond), or returns
// store.ErrLocked if another owner holds it. The lock's expiry is kept
// by Redis's clock.
func (s *Store) TryLock(ctx context.Context, name string, ttl time.Duration) (store.Lock, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms
	l := &lock{s: s, key: s.key("lock", name), owner: hex.EncodeToString(b[:])}
	ok, err := s.c.SetNX(ctx, l.key, l.owner, max(ttl, time.Millisecond)).Result()
	switch {
	case err != nil:
		return nil, s.fail(err)
	case !ok:
		return nil, store.ErrLocked
	}
	return l, nil
}

// lock is a held lock: its key holds owner while it is this lock's.
type lock struct {
	s     *Store
	key   string
	owner string
}

// The lock scripts act only if the lock is still this owner's, so that a
// slow former owner cannot extend or free the lock of the next one.
var (
	extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)
)

// Extend pushes the lock's expiry to ttl from now, or returns
// store.ErrLockLost if it expired or passed to another owner.
func (l *lock) Extend(ctx context.Context, ttl time.Duration) error {
	if err := l.s.usable(); err != nil {
		return err
	}
	n, err := extendScript.Run(ctx, l.s.c, []string{l.key}, l.owner, max(ttl, time.Millisecond).Milliseconds()).Int64()
	switch {
	case err != nil:
		return l.s.fail(err)
	case n == 0:
		return store.ErrLockLost
	}
	return nil
}

// Release frees the lock if this owner still holds it.
func (l *lock) Release(ctx context.Context) error {
	if err := l.s.usable(); err != nil {
		return err
	}
	return l.s.fail(releaseScript.Run(ctx, l.s.c, []string{l.key}, l.owner).Err())
}

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
