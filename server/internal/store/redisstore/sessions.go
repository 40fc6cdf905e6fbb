package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

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
