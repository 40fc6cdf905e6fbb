package boltstore

import (
	"context"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// TryLock takes the lock name for ttl, or returns store.ErrLocked if
// another owner holds it. One process serves the file, so locks live in
// memory.
func (s *Store) TryLock(_ context.Context, name string, ttl time.Duration) (store.Lock, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	l, err := s.locks.TryLock(name, ttl)
	if err != nil {
		return nil, err
	}
	return lock{Lock: l, s: s}, nil
}

// lock refuses extensions once the store is closed. Release still works:
// releasing is what a shutting-down holder does.
type lock struct {
	store.Lock
	s *Store
}

func (l lock) Extend(ctx context.Context, ttl time.Duration) error {
	if l.s.closed.Load() {
		return errClosed
	}
	return l.Lock.Extend(ctx, ttl)
}
