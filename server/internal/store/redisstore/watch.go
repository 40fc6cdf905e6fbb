package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

const (
	// readBlock is how long one XREAD waits for events: EventSynced follows
	// every read, so well within the second the Watcher contract asks.
	readBlock = 250 * time.Millisecond
	// callWait bounds the feed's reconnection, and each XREAD (its block
	// included), retries and all: a server silent for longer hangs, and the
	// feed is lost
	// (go-redis alone would wait readBlock+10s for an XREAD, and retry a
	// Cluster call on a hung master for seconds). It needs a client that
	// honours context deadlines, as NewClient's do.
	callWait = readBlock + time.Second
	// readCount caps the events one XREAD returns.
	readCount = 100
	// Retries after a failure back off from minBackoff to maxBackoff, which
	// bounds how long after Redis serves again (a restart, a promoted
	// replica) the feed resumes: a retry costs one failed dial.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

// Watch delivers the event feed (every replica's evictions and revocations,
// this one's included) to handle, one event at a time from Watch's
// goroutine, until ctx ends; it then returns ctx.Err(). It does not return
// for Redis errors: it retries, backing off up to half a second, and after every
// reconnect starts again with an EventResync, since events may have been
// missed (or, after a restart without persistence, the data lost). While
// reads succeed it sends an EventSynced after each one, so at least every
// second; while Redis is unreachable it sends none, and one EventUnavailable
// when the feed is lost (not one per retry). It returns an error wrapping
// store.ErrUnavailable once the store is closed.
func (s *Store) Watch(ctx context.Context, handle func(store.Event)) error {
	backoff := minBackoff
	lost := false // an EventUnavailable was sent, and no read has succeeded since
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.usable(); err != nil {
			return err
		}
		read, err := s.follow(ctx, handle)
		if read {
			backoff = minBackoff // it was connected: a new failure starts afresh
			lost = false
		}
		if err := s.usable(); err != nil {
			return err
		}
		if ctx.Err() == nil && !lost {
			handle(store.Event{Kind: store.EventUnavailable, At: s.now(), Err: s.fail(err)})
			lost = true
		}
		// A Cluster client reloads its slot map on MOVED, and otherwise
		// only once a minute: after a failover it kept dialling the dead
		// master of our slot for up to a minute. Each failed attempt asks
		// for a reload (in the background, one at a time), so that a later
		// one reaches the promoted replica.
		if r, ok := s.c.(slotMapReloader); ok {
			r.ReloadState(ctx)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// slotMapReloader is a Cluster client (*redis.ClusterClient).
type slotMapReloader interface {
	ReloadState(ctx context.Context)
}

// follow (re)connects to the feed and delivers it until the first error,
// which it returns, or until ctx ends or the store is closed. It reports
// whether any read succeeded.
func (s *Store) follow(ctx context.Context, handle func(store.Event)) (read bool, err error) {
	events := s.key("events")
	cctx, cancel := context.WithTimeout(ctx, callWait)
	defer cancel()
	// Restore the key check a Redis restarted without persistence lost, so
	// that a replica opened later with another key is still refused.
	if err := s.c.SetNX(cctx, s.key("keycheck"), s.codec.KeyCheck(), 0).Err(); err != nil {
		return false, err
	}
	// Start after the last event now in the stream: what came before is in
	// the store, which the receiver reloads on EventResync.
	last := "0-0"
	msgs, err := s.c.XRevRangeN(cctx, events, "+", "-", 1).Result()
	if err != nil {
		return false, err
	}
	if len(msgs) > 0 {
		last = msgs[0].ID
	}
	handle(store.Event{Kind: store.EventResync})
	for ctx.Err() == nil && s.usable() == nil {
		at := s.now()
		rctx, cancel := context.WithTimeout(ctx, callWait)
		streams, err := s.c.XRead(rctx, &redis.XReadArgs{
			Streams: []string{events, last},
			Count:   readCount,
			Block:   readBlock,
		}).Result()
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) { // redis.Nil: no event within readBlock
			return read, err
		}
		read = true
		n := 0
		for _, st := range streams {
			for _, m := range st.Messages {
				last = m.ID
				n++
				if ev, ok := decodeEvent(m); ok {
					handle(ev)
				}
			}
		}
		// A full read may have left events older than at in the stream:
		// only a read that drained it proves everything before at arrived.
		if n < readCount {
			handle(store.Event{Kind: store.EventSynced, At: at})
		}
	}
	return read, ctx.Err()
}

// decodeEvent reads an event of the stream; ok is false for kinds this
// version does not know, which it skips.
func decodeEvent(m redis.XMessage) (ev store.Event, ok bool) {
	field := func(name string) string { v, _ := m.Values[name].(string); return v }
	// The ID starts with the unix ms at which Redis appended the event.
	if msStr, _, found := strings.Cut(m.ID, "-"); found {
		if n, err := strconv.ParseInt(msStr, 10, 64); err == nil {
			ev.At = time.UnixMilli(n)
		}
	}
	switch field("kind") {
	case "evicted":
		ev.Kind, ev.TokenID = store.EventEvicted, field("id")
		return ev, ev.TokenID != ""
	case "session":
		until, err := strconv.ParseFloat(field("until"), 64) // ZSCORE may format it as a float
		if err != nil {
			return ev, false
		}
		ev.Kind, ev.SessionID, ev.Until = store.EventSessionRevoked, field("id"), time.UnixMilli(int64(until))
		return ev, ev.SessionID != ""
	}
	return ev, false
}
