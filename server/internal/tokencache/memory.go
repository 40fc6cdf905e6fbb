package tokencache

import (
	"context"
	"sync"
	"time"
)

// Memory is a Store in process memory: for tests and single-process demos.
// Everything is lost when the process exits.
type Memory struct {
	now func() time.Time

	mu       sync.RWMutex
	current  map[Key]string       // key -> token id
	entries  map[string]Entry     // token id -> entry
	sessions map[string]time.Time // revoked session id -> until
	writes   int
}

// pruneEvery is how many writes pass between sweeps of expired records.
const pruneEvery = 256

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
	}
}

func (m *Memory) Current(_ context.Context, key Key) (Entry, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.current[key]
	if !ok {
		return Entry{}, false, nil
	}
	e, ok := m.entries[id]
	return e, ok, nil
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
	id := TokenID(token)
	if e, ok := m.entries[id]; ok {
		delete(m.entries, id)
		if m.current[e.Key] == id {
			delete(m.current, e.Key)
		}
	}
	return nil
}

func (m *Memory) RevokeSession(_ context.Context, id string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[id] = until
	m.wrote()
	return nil
}

func (m *Memory) SessionRevoked(_ context.Context, id string) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	until, ok := m.sessions[id]
	return ok && m.now().Before(until), nil
}

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
			delete(m.entries, id)
			if m.current[e.Key] == id {
				delete(m.current, e.Key)
			}
		}
	}
}
