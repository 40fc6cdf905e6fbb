package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// entriesBatch is how many entries Entries fetches per MGET.
const entriesBatch = 500

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
