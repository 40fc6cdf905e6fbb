package cartosim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config configures a Sim. Zero values mean the documented defaults.
type Config struct {
	ClientID      string           // the M2M OAuth client accepted by /oauth/token (required)
	ClientSecret  string           // its secret (required)
	Audience      string           // default "carto-cloud-native-api"
	OAuthTTL      time.Duration    // expires_in of OAuth tokens, default 24h
	Now           func() time.Time // default time.Now; used for every expiry decision
	PublicURL     string           // base URL written into Maps responses; if empty, derived from the request
	CreateStatus  int              // status of a successful POST /v3/tokens: 200 (default) or 201
	DeleteStatus  int              // status of a successful DELETE /v3/tokens/{t}: 204 (default) or 200
	ListWrapped   bool             // GET /v3/tokens answers {"tokens":[...]} instead of a bare array
	MaxLiveTokens int              // quota of live API tokens per client; 0 means 1000
	QuotaStatus   int              // status when the quota is full: 429 (default) or 403
	// ControlToken is the secret the control endpoints (/_sim/*) require,
	// sent as `Authorization: Bearer <token>`. Empty: a random one, read
	// with Sim.ControlToken.
	ControlToken string
}

// defaultAudience is the audience CARTO's OAuth server requires.
const defaultAudience = "carto-cloud-native-api"

// maxBody caps every request body the Sim reads.
const maxBody = 1 << 20

// Sim is an in-process emulator of the CARTO 3 APIs. It is an http.Handler
// and is safe for concurrent use.
type Sim struct {
	audience     string
	ttl          time.Duration
	now          func() time.Time
	publicURL    string
	createStatus int
	deleteStatus int
	listWrapped  bool
	maxLive      int
	quotaStatus  int
	key          []byte // HS256 key of the API access tokens
	control      []byte // the control endpoints' secret
	data         *table

	faultsMu sync.RWMutex
	faults   Faults

	// mu guards everything below; counters and tokens share it so that
	// Stats is a consistent snapshot.
	mu      sync.Mutex
	clients map[string]string // client id -> secret
	oauth   map[string]oauthToken
	tokens  map[string]*apiToken
	seq     uint64
	stats   Stats
	// changed is closed when the counters may have changed; nil until
	// WaitFor waits on it.
	changed chan struct{}
}

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

// New returns a Sim configured by cfg.
func New(cfg Config) (*Sim, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("cartosim: ClientID and ClientSecret are required")
	}
	s := &Sim{
		audience:     cfg.Audience,
		ttl:          cfg.OAuthTTL,
		now:          cfg.Now,
		createStatus: cfg.CreateStatus,
		deleteStatus: cfg.DeleteStatus,
		listWrapped:  cfg.ListWrapped,
		maxLive:      cfg.MaxLiveTokens,
		quotaStatus:  cfg.QuotaStatus,
		data:         retailStores(),
		clients:      map[string]string{cfg.ClientID: cfg.ClientSecret},
		oauth:        make(map[string]oauthToken),
		tokens:       make(map[string]*apiToken),
	}
	if s.audience == "" {
		s.audience = defaultAudience
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch {
	case s.ttl < 0:
		return nil, errors.New("cartosim: OAuthTTL must not be negative")
	case s.ttl == 0:
		s.ttl = 24 * time.Hour
	}
	statuses := []struct {
		name    string
		v       *int
		allowed []int
	}{
		{"CreateStatus", &s.createStatus, []int{http.StatusOK, http.StatusCreated}},
		{"DeleteStatus", &s.deleteStatus, []int{http.StatusNoContent, http.StatusOK}},
		{"QuotaStatus", &s.quotaStatus, []int{http.StatusTooManyRequests, http.StatusForbidden}},
	}
	for _, st := range statuses {
		if *st.v == 0 {
			*st.v = st.allowed[0]
		} else if !slices.Contains(st.allowed, *st.v) {
			return nil, fmt.Errorf("cartosim: %s must be %d or %d, not %d", st.name, st.allowed[0], st.allowed[1], *st.v)
		}
	}
	switch {
	case s.maxLive < 0:
		return nil, errors.New("cartosim: MaxLiveTokens must not be negative")
	case s.maxLive == 0:
		s.maxLive = 1000
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("cartosim: PublicURL %q is not an absolute URL", cfg.PublicURL)
		}
		s.publicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	s.key = make([]byte, 32)
	rand.Read(s.key) // never fails since Go 1.24
	s.control = []byte(cfg.ControlToken)
	if len(s.control) == 0 {
		s.control = []byte("sim-control-" + randomHex(24))
	}
	return s, nil
}

// ControlToken is the secret of the control endpoints (/_sim/*).
func (s *Sim) ControlToken() string { return string(s.control) }

// addClient registers another M2M client; tests use it for ownership checks.
func (s *Sim) addClient(id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[id] = secret
}

// ServeHTTP dispatches a request. Order: control endpoints, CORS preflight,
// counting, faults, then the emulated API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/_sim" || strings.HasPrefix(path, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	setCORS(w.Header(), r)
	if r.Method == http.MethodOptions {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Cache-Control")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	scope := scopeOf(path)
	// The API's own counters (creations, deletions, ...) are final once it
	// has answered.
	defer s.notify()
	s.mu.Lock()
	s.stats.Requests++
	if scope == ScopeOAuth && r.Method == http.MethodPost {
		s.stats.OAuthRequests++
	}
	if path == "/v3/tokens" && r.Method == http.MethodPost {
		s.stats.CreateRequests++
	}
	s.changedLocked()
	s.mu.Unlock()
	if !s.applyFaults(w, r, scope) {
		return
	}
	switch scope {
	case ScopeOAuth:
		s.serveOAuth(w, r)
	case ScopeTokens:
		s.serveTokens(w, r)
	case ScopeData:
		s.serveData(w, r)
	default:
		notFound(w, r)
	}
}

// scopeOf classifies a path for fault scoping and routing; "" is no API.
func scopeOf(path string) Scope {
	switch {
	case path == "/oauth/token":
		return ScopeOAuth
	case path == "/v3/tokens" || strings.HasPrefix(path, "/v3/tokens/"):
		return ScopeTokens
	case strings.HasPrefix(path, "/v3/sql/") || strings.HasPrefix(path, "/v3/maps/"):
		return ScopeData
	}
	return ""
}

// setCORS lets browsers call the Sim's APIs from another origin: the data
// APIs are called directly by map front ends. Never the control endpoints.
func setCORS(h http.Header, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" {
		h.Set("Access-Control-Allow-Origin", o)
		h.Add("Vary", "Origin")
	} else {
		h.Set("Access-Control-Allow-Origin", "*")
	}
	h.Set("Access-Control-Expose-Headers", "Retry-After")
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

// serveAdmin serves /_sim/*: never faulted, not counted, and only to a
// caller holding the control token. They list every live token, so no CORS
// header is ever sent: a web page on another origin can neither read them
// nor pass a preflight (which carries no credentials, so is refused).
func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !s.controlAllowed(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cartosim-control"`)
		writeJSON(w, http.StatusUnauthorized, errorBody("Unauthorized",
			"the emulator's control endpoints need `Authorization: Bearer <control token>`, printed when the emulator starts"))
		return
	}
	allow := map[string]string{
		"/_sim/stats":  http.MethodGet,
		"/_sim/faults": "GET, PUT",
		"/_sim/reset":  http.MethodPost,
		"/_sim/tokens": http.MethodGet,
	}
	methods, ok := allow[r.URL.Path]
	if !ok {
		notFound(w, r)
		return
	}
	if !slices.Contains(strings.Split(methods, ", "), r.Method) {
		methodNotAllowed(w, methods)
		return
	}
	switch r.URL.Path {
	case "/_sim/stats":
		writeJSON(w, http.StatusOK, s.Stats())
	case "/_sim/faults":
		if r.Method == http.MethodPut {
			var f Faults
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
			if err := dec.Decode(&f); err != nil {
				writeJSON(w, http.StatusBadRequest, errorBody("Invalid faults", err.Error()))
				return
			}
			s.SetFaults(f)
		}
		writeJSON(w, http.StatusOK, s.Faults())
	case "/_sim/reset":
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/tokens":
		writeJSON(w, http.StatusOK, s.debugTokens())
	}
}

// controlAllowed reports whether r carries the control token, as its one
// Authorization header (never a query parameter, which ends up in logs).
func (s *Sim) controlAllowed(r *http.Request) bool {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return false
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), s.control) == 1
}

// writeJSON writes v as a JSON response. HTML escaping is off so SQL text
// such as "a <> b" stays readable.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := marshal(v)
	if err != nil {
		http.Error(w, `{"error":"Internal Server Error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// marshal encodes v as compact JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// errorBody is the {error, description} shape of the Tokens API, which
// CARTO's sample backend reads.
func errorBody(err, description string) map[string]any {
	return map[string]any{"error": err, "description": description}
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]any{
		"error":       "Not found",
		"description": fmt.Sprintf("No route for %s %s", r.Method, r.URL.Path),
		"status":      http.StatusNotFound,
	})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, map[string]any{
		"error":  "Method not allowed",
		"status": http.StatusMethodNotAllowed,
	})
}

// bearerToken returns the credential of a request: the Authorization
// Bearer token, else the access_token query parameter.
func bearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	return r.URL.Query().Get("access_token")
}

// formatTime renders timestamps on the wire: RFC 3339, UTC, seconds.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// httpError is a failure answered as JSON with a status.
type httpError struct {
	status int
	body   any
}

func (e *httpError) write(w http.ResponseWriter) { writeJSON(w, e.status, e.body) }

// tokensError builds a Tokens API error, shaped {error, description}.
func tokensError(status int, short, description string) *httpError {
	return &httpError{status: status, body: errorBody(short, description)}
}
