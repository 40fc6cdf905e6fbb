package cartosim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Faults are switches that make the Sim misbehave, to test how callers
// cope. They apply, in field order, to the requests of Scope.
type Faults struct {
	Latency    time.Duration `json:"latency"`     // added before answering every request
	ErrorRate  float64       `json:"error_rate"`  // fraction 0..1 of requests answered 500
	RateLimit  bool          `json:"rate_limit"`  // answer every request 429 with Retry-After ...
	RetryAfter time.Duration `json:"retry_after"` // ... of this many seconds (rounded up, minimum 1)
	Outage     Outage        `json:"outage"`      // see the Outage constants
	Scope      Scope         `json:"scope"`       // which endpoints the faults hit
}

// Outage is a kind of total failure.
type Outage string

const (
	OutageNone        Outage = ""            // no outage
	OutageUnavailable Outage = "unavailable" // 503 {"error":"Service Unavailable"}
	OutageDrop        Outage = "drop"        // close the connection without a response
	OutageHang        Outage = "hang"        // never answer; wait for the client to give up
)

// Scope selects the endpoints faults apply to.
type Scope string

const (
	ScopeAll    Scope = "all"    // every endpoint but /_sim (also the zero value "")
	ScopeOAuth  Scope = "oauth"  // POST /oauth/token
	ScopeTokens Scope = "tokens" // /v3/tokens...
	ScopeData   Scope = "data"   // /v3/sql/... and /v3/maps/...
)

// faultsWire is the JSON form of Faults: durations as Go duration strings.
type faultsWire struct {
	Latency    json.RawMessage `json:"latency"`
	ErrorRate  float64         `json:"error_rate"`
	RateLimit  bool            `json:"rate_limit"`
	RetryAfter json.RawMessage `json:"retry_after"`
	Outage     Outage          `json:"outage"`
	Scope      Scope           `json:"scope"`
}

// MarshalJSON writes durations as Go duration strings ("250ms").
func (f Faults) MarshalJSON() ([]byte, error) {
	return marshal(faultsWire{
		Latency:    json.RawMessage(strconv.Quote(f.Latency.String())),
		ErrorRate:  f.ErrorRate,
		RateLimit:  f.RateLimit,
		RetryAfter: json.RawMessage(strconv.Quote(f.RetryAfter.String())),
		Outage:     f.Outage,
		Scope:      f.Scope,
	})
}

// UnmarshalJSON accepts durations as Go duration strings or as numbers of
// milliseconds, and rejects values the Sim does not know.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var w faultsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	lat, err := parseDuration("latency", w.Latency)
	if err != nil {
		return err
	}
	ra, err := parseDuration("retry_after", w.RetryAfter)
	if err != nil {
		return err
	}
	nf := Faults{Latency: lat, ErrorRate: w.ErrorRate, RateLimit: w.RateLimit, RetryAfter: ra, Outage: w.Outage, Scope: w.Scope}
	if err := nf.validate(); err != nil {
		return err
	}
	*f = nf
	return nil
}

func parseDuration(field string, raw json.RawMessage) (time.Duration, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		if s == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
		return d, nil
	}
	var ms float64
	if err := json.Unmarshal(raw, &ms); err != nil {
		return 0, fmt.Errorf("%s: want a duration string or a number of milliseconds", field)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

func (f Faults) validate() error {
	switch {
	case f.Latency < 0 || f.RetryAfter < 0:
		return errors.New("durations must not be negative")
	case f.ErrorRate < 0 || f.ErrorRate > 1:
		return errors.New("error_rate must be between 0 and 1")
	}
	switch f.Outage {
	case OutageNone, OutageUnavailable, OutageDrop, OutageHang:
	default:
		return fmt.Errorf("unknown outage %q", f.Outage)
	}
	switch f.Scope {
	case "", ScopeAll, ScopeOAuth, ScopeTokens, ScopeData:
	default:
		return fmt.Errorf("unknown scope %q", f.Scope)
	}
	return nil
}

// covers reports whether the faults hit a request of the given scope. An
// unknown Scope (possible through SetFaults) hits nothing.
func (f Faults) covers(s Scope) bool {
	return f.Scope == "" || f.Scope == ScopeAll || (s != "" && f.Scope == s)
}

// SetFaults replaces the current faults; the next request sees them.
func (s *Sim) SetFaults(f Faults) {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	s.faults = f
}

// Faults returns the current faults.
func (s *Sim) Faults() Faults {
	s.faultsMu.RLock()
	defer s.faultsMu.RUnlock()
	return s.faults
}

// maxFaultBody bounds what is buffered of a body held by a fault; the rest
// stays unread for the API's own size check.
const maxFaultBody = 1 << 20

// applyFaults runs the fault switches for one request and reports whether
// the request should go on to the API.
func (s *Sim) applyFaults(w http.ResponseWriter, r *http.Request, scope Scope) bool {
	f := s.Faults()
	if !f.covers(scope) {
		return true
	}
	if f.Latency > 0 || f.Outage == OutageHang {
		// net/http notices a client that went away (and ends r.Context())
		// only once the request body has been read: read it now, and hand
		// the API a copy.
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxFaultBody))
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return false // the client is gone; nobody to answer
		}
	}
	faulted := func() { s.count(func(st *Stats) { st.Faulted++ }) }
	switch f.Outage {
	case OutageUnavailable:
		faulted()
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "Service Unavailable"})
		return false
	case OutageDrop:
		faulted()
		dropConnection(w)
		return false
	case OutageHang:
		faulted()
		<-r.Context().Done()
		return false
	}
	if f.RateLimit {
		faulted()
		secs := int64((f.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": "Too Many Requests"})
		return false
	}
	if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
		faulted()
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "Internal Server Error"})
		return false
	}
	return true
}

// dropConnection closes the client connection without writing anything.
// Where hijacking is impossible (HTTP/2, recorders) it aborts the handler,
// which net/http turns into a reset stream or closed connection.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}
