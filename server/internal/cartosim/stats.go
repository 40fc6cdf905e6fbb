package cartosim

import (
	"context"
	"fmt"
)

// Stats counts what the Sim has seen since it was created or last reset.
type Stats struct {
	Requests       int64 `json:"requests"`        // every request received, faulted or not (not preflights or /_sim)
	OAuthRequests  int64 `json:"oauth_requests"`  // POST /oauth/token received, faulted or not
	OAuthIssued    int64 `json:"oauth_issued"`    // OAuth tokens actually issued
	CreateRequests int64 `json:"create_requests"` // POST /v3/tokens received, faulted or not
	TokensCreated  int64 `json:"tokens_created"`  // API tokens created
	TokensDeleted  int64 `json:"tokens_deleted"`  // API tokens deleted
	TokensListed   int64 `json:"tokens_listed"`   // GET /v3/tokens answered 200
	TokensRead     int64 `json:"tokens_read"`     // GET /v3/tokens/{t} answered 200
	SQLQueries     int64 `json:"sql_queries"`     // SQL queries answered 200
	MapsQueries    int64 `json:"maps_queries"`    // maps instantiations, geojson, tilejson and tiles answered 200
	Refused        int64 `json:"refused"`         // data-API requests refused with 401/403
	Faulted        int64 `json:"faulted"`         // requests answered (or dropped, or held) by a fault switch
	LiveTokens     int64 `json:"live_tokens"`     // API tokens live at snapshot time
}

// Stats returns a consistent snapshot of the counters.
func (s *Sim) Stats() Stats {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	for _, t := range s.tokens {
		if t.live(now) {
			st.LiveTokens++
		}
	}
	return st
}

// ResetStats zeroes the counters. Tokens are kept.
func (s *Sim) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
	s.changedLocked()
}

func (s *Sim) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
	s.changedLocked()
}

// WaitFor waits until cond holds for the counters, checking it at once and
// again whenever they may have changed (a request was counted, faulted or
// answered), and returns the counters it held for; it returns ctx's error
// if ctx ends first. cond runs outside the Sim's lock, so it may call the
// Sim (Token, say). Tests wait on it for what the Sim has seen, instead of
// polling Stats.
func (s *Sim) WaitFor(ctx context.Context, cond func(Stats) bool) (Stats, error) {
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		changed := s.changed
		s.mu.Unlock()
		st := s.Stats()
		if cond(st) {
			return st, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return st, fmt.Errorf("cartosim: waiting on the counters (now %+v): %w", st, context.Cause(ctx))
		}
	}
}

// notify wakes WaitFor's callers.
func (s *Sim) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changedLocked()
}

// changedLocked wakes WaitFor's callers; s.mu is held.
func (s *Sim) changedLocked() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}
