package cartosim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
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
