package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

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
