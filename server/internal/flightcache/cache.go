// Package flightcache keeps answers of upstream calls for a while, bounded
// in bytes (least recently used first out), and makes concurrent identical
// misses share one call. The CARTO gateway keeps map instantiations in one,
// the named queries their results.
package flightcache

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// Result says how a Get was answered.
type Result string

// The results.
const (
	Hit    Result = "hit"    // from the cache
	Shared Result = "shared" // from an identical call in flight
	Miss   Result = "miss"   // this call went upstream
)

// ErrAborted is what callers sharing a call get when it ended without an
// answer (it panicked).
var ErrAborted = errors.New("the shared call ended without an answer")

// Keep says whether and how an answer is kept: for TTL (0: not kept), and
// how many bytes it holds.
type Keep struct {
	TTL  time.Duration
	Size int
}

// Config configures a Cache.
type Config struct {
	MaxBytes int              // the bound of what is kept
	Now      func() time.Time // time.Now when nil
	// OnEvict, when set, is told of each answer evicted to make room (not
	// of those dropped or ended), for metrics.
	OnEvict func()
}

// Cache holds answers of type V by key.
type Cache[V any] struct {
	cfg Config

	mu      sync.Mutex
	entries map[string]*list.Element // of *entry[V]
	lru     list.List                // front: most recently used
	bytes   int
	flights map[string]*flight[V]
	tags    map[string]map[string]struct{} // tag -> its keys
}

type entry[V any] struct {
	key, tag string
	val      V
	expires  time.Time
	size     int
}

type flight[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// New returns an empty Cache.
func New[V any](cfg Config) *Cache[V] {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache[V]{cfg: cfg, entries: map[string]*list.Element{}, flights: map[string]*flight[V]{}, tags: map[string]map[string]struct{}{}}
}

// Lookup returns the answer kept for key, if it has not ended.
func (c *Cache[V]) Lookup(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookupLocked(key)
}

func (c *Cache[V]) lookupLocked(key string) (V, bool) {
	var zero V
	el, ok := c.entries[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*entry[V])
	if !c.cfg.Now().Before(e.expires) {
		c.removeLocked(el)
		return zero, false
	}
	c.lru.MoveToFront(el)
	return e.val, true
}

// Get returns the answer for key: kept, shared with an identical call in
// flight, or fetched. fetch runs detached from ctx (the callers sharing it
// must not lose it when its first caller leaves) and says how its answer is
// kept; a failed fetch is never kept. tag groups keys for Drop.
func (c *Cache[V]) Get(ctx context.Context, key, tag string, fetch func(context.Context) (V, Keep, error)) (V, Result, error) {
	c.mu.Lock()
	if v, ok := c.lookupLocked(key); ok {
		c.mu.Unlock()
		return v, Hit, nil
	}
	if f, ok := c.flights[key]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.val, Shared, f.err
		case <-ctx.Done():
			var zero V
			return zero, Shared, ctx.Err()
		}
	}
	f := &flight[V]{done: make(chan struct{}), err: ErrAborted}
	c.flights[key] = f
	c.mu.Unlock()

	var keep Keep
	// Whatever happens to fetch, even a panic, the flight ends: its waiters
	// must not wait for an answer that will never come.
	defer func() {
		c.mu.Lock()
		delete(c.flights, key)
		if f.err == nil && keep.TTL > 0 {
			c.addLocked(key, tag, f.val, keep)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.val, keep, f.err = fetch(context.WithoutCancel(ctx))
	return f.val, Miss, f.err
}

func (c *Cache[V]) addLocked(key, tag string, v V, keep Keep) {
	size := len(key) + keep.Size + 128 // the entry's bookkeeping, roughly
	if size > c.cfg.MaxBytes {
		return
	}
	if old, ok := c.entries[key]; ok {
		c.removeLocked(old)
	}
	for c.bytes+size > c.cfg.MaxBytes {
		c.removeLocked(c.lru.Back())
		if c.cfg.OnEvict != nil {
			c.cfg.OnEvict()
		}
	}
	c.entries[key] = c.lru.PushFront(&entry[V]{key: key, tag: tag, val: v, expires: c.cfg.Now().Add(keep.TTL), size: size})
	c.bytes += size
	if tag != "" {
		if c.tags[tag] == nil {
			c.tags[tag] = map[string]struct{}{}
		}
		c.tags[tag][key] = struct{}{}
	}
}

func (c *Cache[V]) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*entry[V])
	delete(c.entries, e.key)
	c.bytes -= e.size
	if keys := c.tags[e.tag]; keys != nil {
		delete(keys, e.key)
		if len(keys) == 0 {
			delete(c.tags, e.tag)
		}
	}
}

// Drop forgets every answer kept under tag and returns how many.
func (c *Cache[V]) Drop(tag string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for key := range c.tags[tag] {
		if el, ok := c.entries[key]; ok {
			c.removeLocked(el)
			n++
		}
	}
	return n
}

// Size returns the answers kept (ended ones included, until looked up or
// evicted) and the bytes they count for.
func (c *Cache[V]) Size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}
