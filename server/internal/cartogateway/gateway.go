// Package cartogateway is the broker's CARTO-compatible gateway for the query
// endpoints (/v3/maps/{connection}/query and /v3/sql/{connection}/query),
// for frontends written against CARTO, such as the reference guide's deck.gl
// app. It accepts only CARTO tokens the broker holds; a query written with a
// bound parameter in place of the group (policy.Bind) is sent to CARTO as the
// token's literal grant when the parameter holds the caller's group, and
// refused otherwise, before anything reaches CARTO. Other queries go to
// CARTO as they are, for CARTO to judge. The follow-up URLs CARTO answers
// (tilejson, tiles, geojson) point at CARTO: tiles do not pass here.
package cartogateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/flightcache"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Tokens finds the CARTO tokens the broker holds (tokencache.Cache).
type Tokens interface {
	// Lookup returns the unexpired entry holding token.
	Lookup(ctx context.Context, token string) (store.Entry, bool, error)
}

// Policies gives a group's current policy (policy.Set).
type Policies interface {
	For(group string) (policy.Policy, error)
}

// Outcome is what the gateway did with a request, for metrics.
type Outcome string

// The outcomes.
const (
	Rewritten       Outcome = "rewritten"       // bound, and sent as the literal grant
	Passed          Outcome = "passed"          // no template: sent as it came
	Unauthenticated Outcome = "unauthenticated" // no token, or one the broker does not hold (401)
	Refused         Outcome = "refused"         // a bound parameter not the caller's (403)
	Invalid         Outcome = "invalid"         // unreadable request, unknown route or method
	Unavailable     Outcome = "unavailable"     // CARTO or the store could not be reached
)

// Observer is told what the gateway does.
type Observer interface {
	GatewayRequest(api, outcome string) // an Outcome; api "" for an unknown route
	GatewayCache(result string)         // a flightcache.Result
}

// Config configures a Gateway.
type Config struct {
	// Upstream is CARTO's API base URL (the emulator's in demo mode).
	Upstream string
	Client   *http.Client
	Tokens   Tokens
	Policies Policies
	// CacheTTL is how long an instantiation answer is reused; 0 turns the
	// cache (and the sharing of identical calls) off.
	CacheTTL time.Duration
	// CacheBytes bounds the cache (16 MiB when zero).
	CacheBytes int
	// Timeout bounds an upstream call up to its answer's headers, and a
	// shared instantiation whole (30 s when zero).
	Timeout  time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	Observer Observer // may be nil
}

// Gateway serves the query routes. Mount it with its path prefix stripped.
type Gateway struct {
	cfg       Config
	upstream  *url.URL
	instances *flightcache.Cache[*answer] // nil when CacheTTL is 0
}

// maxAnswer bounds an instantiation answer held for the cache and for the
// callers sharing it.
const maxAnswer = 1 << 20

// New returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	u, err := url.Parse(strings.TrimSuffix(cfg.Upstream, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("CARTO gateway: upstream %q is not an http(s) URL", cfg.Upstream)
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 16 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	g := &Gateway{cfg: cfg, upstream: u}
	if cfg.CacheTTL > 0 {
		g.instances = flightcache.New[*answer](flightcache.Config{MaxBytes: cfg.CacheBytes, Now: cfg.Now})
	}
	return g, nil
}

// route is a query route: the API and the connection.
type route struct{ api, conn string }

// parseRoute recognises /v3/{maps|sql}/{connection}/query.
func parseRoute(p string) (route, bool) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(segs) != 4 || segs[0] != "v3" || (segs[1] != "maps" && segs[1] != "sql") || segs[3] != "query" {
		return route{}, false
	}
	conn, err := url.PathUnescape(segs[2])
	if err != nil || conn == "" || conn == "." || conn == ".." {
		return route{}, false
	}
	return route{api: segs[1], conn: conn}, true
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := parseRoute(r.URL.EscapedPath())
	if !ok {
		g.observe("", Invalid)
		writeError(w, http.StatusNotFound, "Not found: the gateway serves /v3/maps/{connection}/query and /v3/sql/{connection}/query; the URLs they answer point at CARTO")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		g.observe(rt.api, Invalid)
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed: use GET or POST")
		return
	}
	outcome, err := g.serve(w, r, rt)
	g.observe(rt.api, outcome)
	if err != nil {
		g.fail(w, r, rt, outcome, err)
		return
	}
	g.cfg.Logger.DebugContext(r.Context(), "CARTO gateway request", "api", rt.api, "connection", rt.conn, "outcome", string(outcome))
}

func (g *Gateway) observe(api string, o Outcome) {
	if g.cfg.Observer != nil {
		g.cfg.Observer.GatewayRequest(api, string(o))
	}
}

// errUnauthenticated is a request without a token the broker holds.
var errUnauthenticated = errors.New("unauthenticated")

// errTokenStore is a token store that cannot be read: the gateway cannot
// tell a held token from another, and refuses (fail closed).
var errTokenStore = errors.New("the token store cannot be read")

// serve authenticates, reads and binds the request, then answers it from
// CARTO. An error is written by fail; an answer from CARTO, whatever its
// status, is not an error.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, rt route) (Outcome, error) {
	body, err := readBody(r)
	if err != nil {
		return Invalid, err
	}
	token, err := bearer(r)
	if errors.Is(err, errUnauthenticated) {
		return Unauthenticated, err
	} else if err != nil {
		return Invalid, err
	}
	entry, pol, err := g.authenticate(r.Context(), token)
	if errors.Is(err, errUnauthenticated) {
		return Unauthenticated, err
	} else if err != nil {
		return Unavailable, err
	}
	// A map instantiation is cached under the request exactly as it came,
	// with the token (so the group and its policy: a group's callers share
	// its token) and the browser's origin (CARTO checks it against the
	// token's referers). An answer is only ever stored after its request was bound
	// (below), and binding depends on nothing else, so a hit is served
	// without reading the request again.
	cached := rt.api == "maps" && g.instances != nil
	var key string
	if cached {
		key = strings.Join([]string{store.TokenID(token), entry.Key.PolicyHash, rt.conn, browserOrigin(r), r.Method, r.URL.RawQuery, string(body)}, "\x00")
		if ans, ok := g.instances.Lookup(key); ok {
			g.observeCache(flightcache.Hit)
			writeAnswer(w, ans)
			return Rewritten, nil
		}
	}
	req, err := readRequest(r, body)
	if err != nil {
		return Invalid, err
	}
	if req.token != "" && req.token != token {
		return Invalid, invalid("two different tokens: one in the Authorization header, one as access_token")
	}
	b, err := pol.Bind(rt.conn, req.q, req.params)
	if err != nil {
		return Refused, err
	}
	if b.Template == nil {
		return Passed, g.pass(w, r, rt, token, req)
	}
	query, upBody, err := req.rewritten(b.Query, b.Parameters)
	if err != nil {
		return Invalid, invalid("queryParameters cannot be encoded again: %v", err)
	}
	up := upstreamCall{route: rt, token: token, query: query, body: upBody, origin: r.Header.Get("Origin"), referer: r.Header.Get("Referer"), post: req.post}
	if !cached {
		return Rewritten, g.stream(w, r.Context(), up)
	}
	ans, res, err := g.instances.Get(r.Context(), key, "", func(ctx context.Context) (*answer, flightcache.Keep, error) {
		ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
		defer cancel()
		a, err := g.fetch(ctx, up)
		// Only an instantiation that worked, and does not hold the
		// caller's token, is kept.
		if err != nil || a.status != http.StatusOK || strings.Contains(string(a.body), token) {
			return a, flightcache.Keep{}, err
		}
		return a, flightcache.Keep{TTL: g.cfg.CacheTTL, Size: len(a.body)}, nil
	})
	g.observeCache(res)
	if err != nil {
		return Unavailable, err
	}
	writeAnswer(w, ans)
	return Rewritten, nil
}

func (g *Gateway) observeCache(r flightcache.Result) {
	if g.cfg.Observer != nil {
		g.cfg.Observer.GatewayCache(string(r))
	}
}

// browserOrigin is the origin CARTO checks a token's referers against: the
// Origin header, else the Referer's origin.
func browserOrigin(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return o
	}
	if u, err := url.Parse(r.Header.Get("Referer")); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return ""
}

// bearer is the caller's CARTO token: the Authorization header's, or else
// an access_token parameter (both CARTO's ways). readRequest's strict
// reading later refuses a second, different one.
func bearer(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(t) == "" {
			return "", fmt.Errorf("%w: the Authorization header must be Bearer <token>", errUnauthenticated)
		}
		return strings.TrimSpace(t), nil
	}
	if strings.Contains(r.URL.RawQuery, "access_token") {
		q, err := strictQuery(r.URL.RawQuery)
		if err != nil {
			return "", err
		}
		if t := q.Get("access_token"); t != "" {
			return t, nil
		}
	}
	return "", fmt.Errorf("%w: a CARTO API access token issued by this broker is required (Authorization: Bearer <token>)", errUnauthenticated)
}

// authenticate finds the token among those the broker holds, and its
// group's policy, which must still be the one it was minted under.
func (g *Gateway) authenticate(ctx context.Context, token string) (store.Entry, policy.Policy, error) {
	e, ok, err := g.cfg.Tokens.Lookup(ctx, token)
	if err != nil {
		return store.Entry{}, policy.Policy{}, fmt.Errorf("%w: %w", errTokenStore, err)
	}
	if !ok {
		return store.Entry{}, policy.Policy{}, fmt.Errorf("%w: the token is not one this broker holds: unknown, revoked or expired", errUnauthenticated)
	}
	pol, err := g.cfg.Policies.For(e.Key.Group)
	if err != nil || pol.Hash != e.Key.PolicyHash {
		return store.Entry{}, policy.Policy{}, fmt.Errorf("%w: the token was issued under a policy its group no longer has: ask for a new one", errUnauthenticated)
	}
	return e, pol, nil
}

// fail writes the gateway's own refusal, in CARTO's error shape, and logs
// it. A refusal never says what a bound parameter should hold.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, rt route, o Outcome, err error) {
	var tooLarge *http.MaxBytesError
	status := http.StatusBadRequest
	msg := err.Error()
	switch {
	case errors.As(err, &tooLarge):
		status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body larger than %d bytes", tooLarge.Limit)
	case o == Unauthenticated:
		status = http.StatusUnauthorized
		msg = "Unauthorized: " + strings.TrimPrefix(msg, errUnauthenticated.Error()+": ")
		w.Header().Set("WWW-Authenticate", `Bearer realm="carto"`)
	case o == Refused:
		status = http.StatusForbidden
		msg = "Forbidden: " + msg
	case errors.Is(err, errTokenStore):
		status, msg = http.StatusServiceUnavailable, "The broker cannot check tokens right now; retry later"
		w.Header().Set("Retry-After", "1")
	case o == Unavailable && errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusGatewayTimeout, "CARTO did not answer in time"
	case o == Unavailable:
		status, msg = http.StatusBadGateway, "CARTO could not be reached"
	default:
		msg = strings.TrimPrefix(msg, errInvalid.Error()+": ")
	}
	level := slog.LevelInfo
	if o == Unavailable {
		level = slog.LevelWarn
	}
	g.cfg.Logger.Log(r.Context(), level, "CARTO gateway did not serve a request", "api", rt.api, "connection", rt.conn, "outcome", string(o), "status", status, "error", err)
	writeError(w, status, msg)
}
