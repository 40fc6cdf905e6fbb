package tokencache

import (
	"context"
	"sync"
	"time"
)

// Memory is a Store in process memory: for tests and demo mode. Everything is
// lost when the process exits, and nothing is shared with other processes.
type Memory struct {
	now func() time.Time

	mu       sync.RWMutex
	current  map[Key]string       // key -> token id
	entries  map[string]Entry     // token id -> entry
	sessions map[string]time.Time // revoked session id -> until
	secrets  map[string]Secret
	counters map[counterKey]int64
	writes   int

	locks *LocalLocks
}

// pruneEvery is how many writes pass between sweeps of expired records.
const pruneEvery = 256

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store. now is time.Now when nil.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{
		now:      now,
		current:  make(map[Key]string),
		entries:  make(map[string]Entry),
		sessions: make(map[string]time.Time),
		secrets:  make(map[string]Secret),
		locks:    NewLocalLocks(now),
		counters: make(map[counterKey]int64),
	}
}

func (m *Memory) Current(_ context.Context, key Key) (Entry, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.entries[m.current[key]]
	if !ok || !m.now().Before(e.ExpiresAt) {
		return Entry{}, false, nil
	}
	return e, true, nil
}

func (m *Memory) Put(_ context.Context, e Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := TokenID(e.Token)
	m.entries[id] = e
	m.current[e.Key] = id
	m.wrote()
	return nil
}

func (m *Memory) ByToken(_ context.Context, token string) (Entry, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.entries[TokenID(token)]
	if !ok || !m.now().Before(e.ExpiresAt) {
		return Entry{}, false, nil
	}
	return e, true, nil
}

func (m *Memory) Remove(_ context.Context, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.remove(TokenID(token))
	return nil
}

// remove forgets an entry. Called with mu held.
func (m *Memory) remove(id string) {
	if e, ok := m.entries[id]; ok {
		delete(m.entries, id)
		if m.current[e.Key] == id {
			delete(m.current, e.Key)
		}
	}
}

func (m *Memory) Entries(context.Context) ([]Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := m.now()
	out := make([]Entry, 0, len(m.entries))
	for _, e := range m.entries {
		if now.Before(e.ExpiresAt) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *Memory) RevokeSession(_ context.Context, id string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until.After(m.sessions[id]) {
		m.sessions[id] = until
	}
	m.wrote()
	return nil
}

func (m *Memory) RevokedSessions(context.Context) (map[string]time.Time, error) {
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

func (m *Memory) Secret(_ context.Context, name string) (Secret, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.secrets[name]
	if !ok || !m.now().Before(s.ExpiresAt) {
		return Secret{}, false, nil
	}
	return s, true, nil
}

func (m *Memory) PutSecret(_ context.Context, name string, s Secret) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secrets[name] = s
	return nil
}

func (m *Memory) TryLock(_ context.Context, name string, ttl time.Duration) (Lock, error) {
	return m.locks.TryLock(name, ttl)
}

type counterKey struct {
	name  string
	start int64 // window start, unix ns
}

func (m *Memory) Count(_ context.Context, name string, at time.Time, window time.Duration, delta int64) (int64, error) {
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

func (m *Memory) Close() error { return nil }

// wrote counts a write and, every pruneEvery writes, forgets what expired.
// Called with mu held.
func (m *Memory) wrote() {
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
