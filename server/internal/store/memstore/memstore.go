// Package memstore is the store.Store in process memory: for tests and demo
// mode. Everything is lost when the process exits, and nothing is shared with
// other processes.
package memstore

import (
	"context"
	"sync"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Config configures a Store.
type Config struct {
	Now func() time.Time // time.Now when nil; every expiry decision uses it
}

// Store is a store.Store in process memory.
type Store struct {
	now func() time.Time

	mu       sync.RWMutex
	current  map[store.Key]string   // key -> token id
	entries  map[string]store.Entry // token id -> entry
	sessions map[string]time.Time   // revoked session id -> until
	secrets  map[string]store.Secret
	counters map[counterKey]int64
	writes   int

	locks *store.LocalLocks
}

// pruneEvery is how many writes pass between sweeps of expired records.
const pruneEvery = 256

var _ store.Store = (*Store)(nil)

// New returns an empty Store.
func New(cfg Config) *Store {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:      now,
		current:  make(map[store.Key]string),
		entries:  make(map[string]store.Entry),
		sessions: make(map[string]time.Time),
		secrets:  make(map[string]store.Secret),
		locks:    store.NewLocalLocks(now),
		counters: make(map[counterKey]int64),
	}
}

func (m *Store) Current(_ context.Context, key store.Key) (store.Entry, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.entries[m.current[key]]
	if !ok || !m.now().Before(e.ExpiresAt) {
		return store.Entry{}, false, nil
	}
	return e, true, nil
}

func (m *Store) Put(_ context.Context, e store.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := store.TokenID(e.Token)
	m.entries[id] = e
	m.current[e.Key] = id
	m.wrote()
	return nil
}

func (m *Store) ByToken(_ context.Context, token string) (store.Entry, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.entries[store.TokenID(token)]
	if !ok || !m.now().Before(e.ExpiresAt) {
		return store.Entry{}, false, nil
	}
	return e, true, nil
}

func (m *Store) Remove(_ context.Context, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.remove(store.TokenID(token))
	return nil
}

// remove forgets an entry. Called with mu held.
func (m *Store) remove(id string) {
	if e, ok := m.entries[id]; ok {
		delete(m.entries, id)
		if m.current[e.Key] == id {
			delete(m.current, e.Key)
		}
	}
}

func (m *Store) Entries(context.Context) ([]store.Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := m.now()
	out := make([]store.Entry, 0, len(m.entries))
	for _, e := range m.entries {
		if now.Before(e.ExpiresAt) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *Store) RevokeSession(_ context.Context, id string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until.After(m.sessions[id]) {
		m.sessions[id] = until
	}
	m.wrote()
	return nil
}

func (m *Store) RevokedSessions(context.Context) (map[string]time.Time, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := m.now()
	out := make(map[string]time.Time, len(m.sessions))
	for id, until := range m.sessions {
		if now.Before(until) {
			out[id] = until
		}
	}
	return out, nil
}

func (m *Store) Secret(_ context.Context, name string) (store.Secret, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.secrets[name]
	if !ok || !m.now().Before(s.ExpiresAt) {
		return store.Secret{}, false, nil
	}
	return s, true, nil
}

func (m *Store) PutSecret(_ context.Context, name string, s store.Secret) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secrets[name] = s
	return nil
}

func (m *Store) TryLock(_ context.Context, name string, ttl time.Duration) (store.Lock, error) {
	return m.locks.TryLock(name, ttl)
}

type counterKey struct {
	name  string
	start int64 // window start, unix ns
}

func (m *Store) Count(_ context.Context, name string, at time.Time, window time.Duration, delta int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := counterKey{name, at.Truncate(window).UnixNano()}
	m.counters[k] += delta
	n := m.counters[k]
	for old := range m.counters {
		if old.name == name && old.start < k.start-int64(window) {
			delete(m.counters, old) // windows before the previous one are never asked again
		}
	}
	return n, nil
}

func (m *Store) Close() error { return nil }

// wrote counts a write and, every pruneEvery writes, forgets what expired.
// Called with mu held.
func (m *Store) wrote() {
	m.writes++
	if m.writes%pruneEvery != 0 {
		return
	}
	now := m.now()
	for id, until := range m.sessions {
		if !now.Before(until) {
			delete(m.sessions, id)
		}
	}
	for id, e := range m.entries {
		if !now.Before(e.ExpiresAt) {
			m.remove(id)
		}
	}
}
