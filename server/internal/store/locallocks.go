package store

import (
	"context"
	"sync"
	"time"
)

// LocalLocks is a table of locks with owners and expiry, held in this
// process: the locks of stores that a single process serves (memstore, boltstore).
type LocalLocks struct {
	now func() time.Time

	mu   sync.Mutex
	held map[string]localLock
	seq  uint64
}

type localLock struct {
	owner   uint64
	expires time.Time
}

// NewLocalLocks returns an empty table. now is time.Now when nil.
func NewLocalLocks(now func() time.Time) *LocalLocks {
	if now == nil {
		now = time.Now
	}
	return &LocalLocks{now: now, held: make(map[string]localLock)}
}

// TryLock takes name for ttl, or returns ErrLocked while another owner holds it.
func (t *LocalLocks) TryLock(name string, ttl time.Duration) (Lock, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if l, held := t.held[name]; held && now.Before(l.expires) {
		return nil, ErrLocked
	}
	t.seq++
	t.held[name] = localLock{owner: t.seq, expires: now.Add(ttl)}
	return &localHandle{t: t, name: name, owner: t.seq}, nil
}

type localHandle struct {
	t     *LocalLocks
	name  string
	owner uint64
}

func (h *localHandle) Extend(_ context.Context, ttl time.Duration) error {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	now := h.t.now()
	cur, held := h.t.held[h.name]
	if !held || cur.owner != h.owner || !now.Before(cur.expires) {
		return ErrLockLost
	}
	h.t.held[h.name] = localLock{owner: h.owner, expires: now.Add(ttl)}
	return nil
}

func (h *localHandle) Release(context.Context) error {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	if cur, held := h.t.held[h.name]; held && cur.owner == h.owner {
		delete(h.t.held, h.name)
	}
	return nil
}
