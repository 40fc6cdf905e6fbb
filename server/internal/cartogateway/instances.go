package cartogateway

import (
	"container/list"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// answer is an upstream answer held whole: an instantiation is small (a
// schema and a few URLs).
type answer struct {
	status int
	header http.Header // the headers passed on (passedHeaders)
	body   []byte
}

// CacheResult says how an instantiation was answered, for metrics.
type CacheResult string

// The cache results.
const (
	CacheHit    CacheResult = "hit"    // from the cache
	CacheShared CacheResult = "shared" // from an identical call in flight
	CacheMiss   CacheResult = "miss"   // this call went upstream
)

// instances caches map instantiation answers for a short time, bounded in
// bytes (least recently used first out), and makes concurrent identical
// misses share one upstream call. Keys name the token and its policy (see
// Gateway.instantiate): a revoked token fails authentication before the
// cache is read, and a policy change brings new tokens, so neither can be
// served an old answer; such entries only wait for their end or eviction.
type instances struct {
	ttl      time.Duration
	maxBytes int
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]*list.Element // of *cached
	lru     list.List                // front: most recently used
	bytes   int
	flights map[string]*flight
}

type cached struct {
	key     string
	ans     *answer
	expires time.Time
	size    int
}

// errFlightAborted is what waiters get when the call they shared ended
// without an answer (it panicked).
var errFlightAborted = errors.New("the shared call to CARTO ended without an answer")

type flight struct {
	done chan struct{}
	ans  *answer
	err  error
}

func newInstances(ttl time.Duration, maxBytes int, now func() time.Time) *instances {
	return &instances{ttl: ttl, maxBytes: maxBytes, now: now, entries: map[string]*list.Element{}, flights: map[string]*flight{}}
}

// lookup returns the cached answer for key, if there is one still fresh.
func (c *instances) lookup(key string) (*answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookupLocked(key)
}

func (c *instances) lookupLocked(key string) (*answer, bool) {
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cached)
	if !c.now().Before(e.expires) {
		c.removeLocked(el)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.ans, true
}

// get returns the answer for key: cached, shared with an identical call in
// flight, or fetched. fetch runs detached from ctx (the others waiting on it
// must not lose it when its first caller leaves); keep says whether its
// answer may be cached.
func (c *instances) get(ctx context.Context, key string, fetch func(context.Context) (*answer, error), keep func(*answer) bool) (*answer, CacheResult, error) {
	c.mu.Lock()
	if a, ok := c.lookupLocked(key); ok {
		c.mu.Unlock()
		return a, CacheHit, nil
	}
	if f, ok := c.flights[key]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.ans, CacheShared, f.err
		case <-ctx.Done():
			return nil, CacheShared, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	c.mu.Unlock()

	// Whatever happens to fetch, even a panic, the flight ends: its waiters
	// must not wait for an answer that will never come.
	f.err = errFlightAborted
	defer func() {
		c.mu.Lock()
		delete(c.flights, key)
		if f.err == nil && keep(f.ans) {
			c.addLocked(key, f.ans)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.ans, f.err = fetch(context.WithoutCancel(ctx))
	return f.ans, CacheMiss, f.err
}

func (c *instances) addLocked(key string, ans *answer) {
	size := len(key) + len(ans.body) + 256 // the headers and bookkeeping, roughly
	if size > c.maxBytes {
		return
	}
	for c.bytes+size > c.maxBytes {
		c.removeLocked(c.lru.Back())
	}
	c.entries[key] = c.lru.PushFront(&cached{key: key, ans: ans, expires: c.now().Add(c.ttl), size: size})
	c.bytes += size
}

func (c *instances) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*cached)
	delete(c.entries, e.key)
	c.bytes -= e.size
}

// len returns the number of answers held, expired ones included.
func (c *instances) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
