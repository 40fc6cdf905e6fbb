package cartosim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

const (
	testClient = "client-1"
	testSecret = "secret-1"
	bostonSQL  = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'BOSTON'"
	groupSQL   = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @groupcity"
)

// env is a Sim behind a real HTTP server.
type env struct {
	t     *testing.T
	sim   *Sim
	srv   *httptest.Server
	clock *clocktest.Clock
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	clk := clocktest.At(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = testClient, testSecret
	}
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &env{t: t, sim: sim, srv: srv, clock: clk}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func (r response) arr(t *testing.T) []any {
	t.Helper()
	var a []any
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("body %q is not a JSON array: %v", r.body, err)
	}
	return a
}

// do sends a request; body may be nil, a string (sent as is) or any other
// value (sent as JSON). Headers come in name, value pairs.
func (e *env) do(method, path string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd, ctype = strings.NewReader(string(j)), "application/json"
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// control is the header pair of the control endpoints' secret.
func (e *env) control() []string { return bearer(e.sim.ControlToken()) }

func (e *env) oauthFor(id, secret string) string {
	e.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "audience": {defaultAudience}}
	r := e.do("POST", "/oauth/token", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if r.status != 200 {
		e.t.Fatalf("oauth: %d %s", r.status, r.body)
	}
	return r.obj(e.t)["access_token"].(string)
}

func (e *env) oauth() string { return e.oauthFor(testClient, testSecret) }

// createToken creates an API token and returns it.
func (e *env) createToken(oauth string, req map[string]any) string {
	e.t.Helper()
	r := e.do("POST", "/v3/tokens", req, bearer(oauth)...)
	if r.status != e.sim.createStatus {
		e.t.Fatalf("create token: %d %s", r.status, r.body)
	}
	return r.obj(e.t)["token"].(string)
}

func tokenReq(conn, source string, apis ...string) map[string]any {
	return map[string]any{
		"grants":       []map[string]string{{"connection_name": conn, "source": source}},
		"referers":     []string{},
		"allowed_apis": apis,
	}
}

// query builds a data path with q and optional queryParameters.
func query(path, q, qp string, extra ...string) string {
	v := url.Values{"q": {q}}
	if qp != "" {
		v.Set("queryParameters", qp)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return path + "?" + v.Encode()
}

// assertJSONEqual compares a decoded JSON value with want by re-encoding.
func assertJSONEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{ClientID: "a", ClientSecret: "b"}, true},
		{"no client", Config{ClientSecret: "b"}, false},
		{"no secret", Config{ClientID: "a"}, false},
		{"create 201", Config{ClientID: "a", ClientSecret: "b", CreateStatus: 201}, true},
		{"create 204", Config{ClientID: "a", ClientSecret: "b", CreateStatus: 204}, false},
		{"delete 200", Config{ClientID: "a", ClientSecret: "b", DeleteStatus: 200}, true},
		{"delete 202", Config{ClientID: "a", ClientSecret: "b", DeleteStatus: 202}, false},
		{"quota 403", Config{ClientID: "a", ClientSecret: "b", QuotaStatus: 403}, true},
		{"quota 500", Config{ClientID: "a", ClientSecret: "b", QuotaStatus: 500}, false},
		{"negative ttl", Config{ClientID: "a", ClientSecret: "b", OAuthTTL: -time.Second}, false},
		{"negative quota", Config{ClientID: "a", ClientSecret: "b", MaxLiveTokens: -1}, false},
		{"bad public url", Config{ClientID: "a", ClientSecret: "b", PublicURL: "not a url"}, false},
		{"public url", Config{ClientID: "a", ClientSecret: "b", PublicURL: "https://carto.example/"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New err = %v, want ok=%v", err, tc.ok)
			}
			if err == nil && (s.createStatus == 0 || s.deleteStatus == 0 || s.quotaStatus == 0 || s.maxLive != 1000 || s.audience != defaultAudience || s.ttl != 24*time.Hour) {
				t.Errorf("defaults not applied: %+v", s)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, Config{})
	for _, path := range []string{"/v3/sql/conn/query", "/v3/tokens", "/oauth/token", "/nowhere"} {
		r := e.do("OPTIONS", path, nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "GET")
		if r.status != 204 {
			t.Errorf("preflight %s: status %d", path, r.status)
		}
		want := map[string]string{
			"Access-Control-Allow-Origin":  "https://app.example.com",
			"Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
			"Access-Control-Allow-Headers": "Authorization, Content-Type, Cache-Control",
			"Access-Control-Max-Age":       "600",
		}
		for k, v := range want {
			if got := r.header.Get(k); got != v {
				t.Errorf("preflight %s: %s = %q, want %q", path, k, got, v)
			}
		}
	}
	if r := e.do("OPTIONS", "/v3/tokens", nil); r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight without Origin: Allow-Origin %q", r.header.Get("Access-Control-Allow-Origin"))
	}
	// Normal responses, errors included, carry Allow-Origin too.
	r := e.do("GET", "/v3/sql/conn/query?q=x", nil, "Origin", "https://app.example.com")
	if r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("normal response: %d, Allow-Origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	if r := e.do("GET", "/_sim/stats", nil, e.control()...); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("control response: %d, Allow-Origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	// Preflights are neither counted nor faulted.
	e.sim.SetFaults(Faults{Outage: OutageUnavailable})
	if r := e.do("OPTIONS", "/v3/tokens", nil); r.status != 204 {
		t.Errorf("faulted preflight: %d", r.status)
	}
	if st := e.sim.Stats(); st.Requests != 1 || st.Faulted != 0 {
		t.Errorf("stats after preflights: %+v", st)
	}
}

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/", 404, ""},
		{"GET", "/v3/unknown", 404, ""},
		{"GET", "/v3/tokens/a/b", 404, ""},
		{"GET", "/v3/maps/conn/table?name=x", 404, ""},
		{"GET", "/v3/sql/conn/job", 404, ""},
		{"GET", "/oauth/token", 405, "POST"},
		{"PUT", "/v3/tokens", 405, "GET, POST"},
		{"POST", "/v3/tokens/abc", 405, "GET, PATCH, DELETE"},
		{"DELETE", "/v3/sql/conn/query", 405, "GET, POST"},
		{"POST", "/v3/maps/conn/query/geojson", 405, "GET"},
		{"POST", "/v3/maps/conn/query/1/2/3", 405, "GET"},
		{"POST", "/_sim/stats", 405, "GET"},
		{"GET", "/_sim/nothing", 404, ""},
	}
	for _, tc := range tests {
		r := e.do(tc.method, tc.path, nil, e.control()...)
		if r.status != tc.status || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow=%q, want %d Allow=%q", tc.method, tc.path, r.status, r.header.Get("Allow"), tc.status, tc.allow)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: content type %q", tc.method, tc.path, ct)
		}
		if r.obj(t)["error"] == nil {
			t.Errorf("%s %s: no error field in %s", tc.method, tc.path, r.body)
		}
	}
}

func TestAdminEndpoints(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.createToken(e.oauth(), tokenReq("carto_dw", bostonSQL, "sql"))

	r := e.do("PUT", "/_sim/faults", `{"latency":"1ms","error_rate":0,"outage":"unavailable","scope":"data"}`, e.control()...)
	if r.status != 200 {
		t.Fatalf("PUT faults: %d %s", r.status, r.body)
	}
	want := Faults{Latency: time.Millisecond, Outage: OutageUnavailable, Scope: ScopeData}
	if got := e.sim.Faults(); got != want {
		t.Errorf("faults = %+v, want %+v", got, want)
	}
	if r := e.do("GET", "/_sim/faults", nil, e.control()...); !strings.Contains(string(r.body), `"latency":"1ms"`) {
		t.Errorf("GET faults: %s", r.body)
	}
	if r := e.do("PUT", "/_sim/faults", `{"outage":"meltdown"}`, e.control()...); r.status != 400 {
		t.Errorf("PUT bad faults: %d", r.status)
	}
	if got := e.sim.Faults(); got != want {
		t.Errorf("a rejected PUT changed faults to %+v", got)
	}
	// Admin endpoints are never faulted, even with scope all.
	e.sim.SetFaults(Faults{Outage: OutageUnavailable})
	r = e.do("GET", "/_sim/tokens", nil, e.control()...)
	if r.status != 200 {
		t.Fatalf("GET tokens: %d", r.status)
	}
	list := r.arr(t)
	if len(list) != 1 || list[0].(map[string]any)["token"] != tok || list[0].(map[string]any)["client_id"] != testClient {
		t.Errorf("GET tokens: %s", r.body)
	}
	st := e.do("GET", "/_sim/stats", nil, e.control()...).obj(t)
	if st["tokens_created"] != 1.0 || st["live_tokens"] != 1.0 || st["oauth_issued"] != 1.0 {
		t.Errorf("stats: %v", st)
	}
	if r := e.do("POST", "/_sim/reset", nil, e.control()...); r.status != 204 {
		t.Errorf("reset: %d", r.status)
	}
	if st := e.sim.Stats(); st != (Stats{LiveTokens: 1}) {
		t.Errorf("stats after reset: %+v", st)
	}
}

func TestStatsCounters(t *testing.T) {
	e := newEnv(t, Config{})
	oauth := e.oauth()                                                                          // 1 request, oauth 1/1
	e.do("POST", "/oauth/token", "grant_type=client_credentials&client_id=x&client_secret=y")   // oauth received, not issued
	tok := e.createToken(oauth, tokenReq("carto_dw", "*", "sql", "maps"))                       // created
	del := e.createToken(oauth, tokenReq("carto_dw", "*", "sql"))                               // created
	e.do("GET", "/v3/tokens", nil, bearer(oauth)...)                                            // listed
	e.do("GET", "/v3/tokens/"+tok, nil, bearer(oauth)...)                                       // read
	e.do("GET", "/v3/tokens/nope", nil, bearer(oauth)...)                                       // 404, not read
	e.do("DELETE", "/v3/tokens/"+del, nil, bearer(oauth)...)                                    // deleted
	e.do("GET", query("/v3/sql/carto_dw/query", bostonSQL, ""), nil, bearer(tok)...)            // sql
	e.do("GET", query("/v3/sql/carto_dw/query", "SELECT nope FROM x", ""), nil, bearer(tok)...) // 404 table, not counted
	e.do("GET", query("/v3/maps/carto_dw/query", bostonSQL, ""), nil, bearer(tok)...)           // maps
	e.do("GET", query("/v3/maps/carto_dw/query/tilejson", bostonSQL, ""), nil, bearer(tok)...)  // maps
	e.do("GET", query("/v3/sql/carto_dw/query", bostonSQL, ""), nil)                            // refused 401
	e.do("GET", query("/v3/sql/carto_dw/query", bostonSQL, ""), nil, bearer(del)...)            // refused 401
	e.do("GET", query("/v3/sql/other/query", bostonSQL, ""), nil, bearer(tok)...)               // refused 403
	e.sim.SetFaults(Faults{ErrorRate: 1})
	e.do("GET", "/v3/tokens", nil, bearer(oauth)...) // faulted
	want := Stats{
		Requests: 16, OAuthRequests: 2, OAuthIssued: 1, CreateRequests: 2, TokensCreated: 2, TokensDeleted: 1,
		TokensListed: 1, TokensRead: 1, SQLQueries: 1, MapsQueries: 2, Refused: 3, Faulted: 1, LiveTokens: 1,
	}
	if got := e.sim.Stats(); got != want {
		t.Errorf("stats\n got %+v\nwant %+v", got, want)
	}
	e.sim.ResetStats()
	if got := e.sim.Stats(); got != (Stats{LiveTokens: 1}) {
		t.Errorf("after reset: %+v", got)
	}
}

// TestConcurrentUse exercises the Sim from many goroutines for -race.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, Config{})
	oauth := e.oauth()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			tok := e.createToken(oauth, tokenReq("carto_dw", "*", "sql", "maps"))
			for range 5 {
				if r := e.do("GET", query("/v3/sql/carto_dw/query", bostonSQL, ""), nil, bearer(tok)...); r.status != 200 {
					t.Errorf("query: %d", r.status)
				}
				e.sim.SetFaults(Faults{Latency: time.Duration(i) * time.Microsecond})
				_ = e.sim.Stats()
				e.do("PATCH", "/v3/tokens/"+tok, map[string]any{"name": "n"}, bearer(oauth)...)
			}
		})
	}
	wg.Wait()
	if st := e.sim.Stats(); st.TokensCreated != 8 || st.SQLQueries != 40 {
		t.Errorf("stats: %+v", st)
	}
}
