package cartogateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
)

// The guide's query, as its frontend sends it.
const guideQuery = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @groupcity"

func literal(city string) string {
	return strings.Replace(guideQuery, "@groupcity", "'"+city+"'", 1)
}

// session logs in over REST and returns a CARTO token of the user's group.
func cartoToken(t *testing.T, b *brokertest.Broker, user, password string) (token, apiBase string) {
	t.Helper()
	var login struct{ Token string }
	post(t, b.RESTURL+"/login", "", `{"username":"`+user+`","password":"`+password+`"}`, &login)
	var issued struct {
		Token      string `json:"token"`
		APIBaseURL string `json:"api_base_url"`
	}
	post(t, b.RESTURL+"/carto-token", login.Token, "", &issued)
	if issued.Token == "" {
		t.Fatalf("no CARTO token for %s", user)
	}
	return issued.Token, issued.APIBaseURL
}

func post(t *testing.T, u, bearer, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// gwCall is one request to the gateway.
type gwCall struct {
	method  string // GET when empty
	path    string // under the gateway; /v3/maps/carto_dw/query when empty
	token   string
	query   string // raw query string
	body    string
	headers map[string]string
}

type gwAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a gwAnswer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %s", a.status, a.body)
	}
	return m
}

func do(t *testing.T, base string, c gwCall) gwAnswer {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodGet
	}
	if c.path == "" {
		c.path = "/v3/maps/carto_dw/query"
	}
	u := base + c.path
	if c.query != "" {
		u += "?" + c.query
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return gwAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// deckQuery is the query string deck.gl 9.0's vectorQuerySource sends.
func deckQuery(q, params string) string {
	v := url.Values{"client": {"deck-gl-carto"}, "spatialDataColumn": {"geom"}, "spatialDataType": {"geo"},
		"tileResolution": {"0.5"}, "q": {q}, "v": {"3.4"}, "deckglVersion": {"9.0.14"}}
	if params != "" {
		v.Set("queryParameters", params)
	}
	return v.Encode()
}

// deckBody is the body deck.gl posts when the URL would pass 8 KiB.
func deckBody(q string, params map[string]any) string {
	m := map[string]any{"v": "3.4", "deckglVersion": "9.0.14", "client": "deck-gl-carto", "spatialDataColumn": "geom",
		"spatialDataType": "geo", "tileResolution": "0.5", "q": q}
	if params != nil {
		m["queryParameters"] = params
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestGatewayRewriteRule(t *testing.T) {
	// Without the cache, so that each case that reaches CARTO does.
	b := brokertest.Start(t, brokertest.Demo(), brokertest.Env(map[string]string{"CARTO_GATEWAY_CACHE_TTL": "0"}))
	boston, base := cartoToken(t, b, "user.boston@acme.com", "boston")
	ny, _ := cartoToken(t, b, "user.ny@acme.com", "ny")
	if base != b.GatewayURL || !strings.HasSuffix(base, "/carto") {
		t.Fatalf("api_base_url %q is not the gateway's (%s)", base, b.GatewayURL)
	}
	base = b.RESTURL + "/carto" // the test reaches the broker by its address
	other := brokertest.Start(t, brokertest.Demo())
	foreign, _ := cartoToken(t, other, "user.boston@acme.com", "boston")

	const (
		rewritten = "rewritten" // 200, CARTO ran the literal grant
		carto403  = "carto403"  // passed on; CARTO refused it
		passed200 = "passed200" // passed on; CARTO ran it
	)
	tests := []struct {
		name   string
		call   gwCall
		status int
		// upstream is what CARTO must have seen: "" nothing at all.
		upstream string
		errText  string // in the gateway's own refusal
	}{
		{name: "bound value equal (GET)", call: gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)}, status: 200, upstream: rewritten},
		{name: "bound value equal (POST body, as deck.gl sends it past 8 KiB)", call: gwCall{method: "POST", token: boston, body: deckBody(guideQuery, map[string]any{"groupcity": "BOSTON"})}, status: 200, upstream: rewritten},
		{name: "bound value equal, access_token parameter", call: gwCall{query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`) + "&access_token=" + url.QueryEscape(boston)}, status: 200, upstream: rewritten},
		{name: "white space differs from the grant", call: gwCall{token: boston, query: deckQuery("SELECT *\n  FROM `carto-demo-data`.demo_tables.retail_stores\n  WHERE city = @groupcity;", `{"groupcity":"BOSTON"}`)}, status: 200, upstream: rewritten},
		{name: "bound value different", call: gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"NEW YORK"}`)}, status: 403, errText: "does not hold the caller's group"},
		{name: "bound value different (POST)", call: gwCall{method: "POST", token: boston, body: deckBody(guideQuery, map[string]any{"groupcity": "NEW YORK"})}, status: 403, errText: "does not hold the caller's group"},
		{name: "bound value differently cased", call: gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"boston"}`)}, status: 403, errText: "does not hold the caller's group"},
		{name: "bound value missing", call: gwCall{token: boston, query: deckQuery(guideQuery, "")}, status: 403, errText: "is missing"},
		{name: "bound value a number", call: gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":1}`)}, status: 403, errText: "does not hold the caller's group"},
		{name: "bound value duplicated", call: gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON","groupcity":"NEW YORK"}`)}, status: 400, errText: "names groupcity twice"},
		{name: "bound parameter also in another case", call: gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON","GROUPCITY":"NEW YORK"}`)}, status: 403, errText: "given twice"},
		{name: "q given twice in the URL", call: gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`) + "&q=" + url.QueryEscape(literal("NEW YORK"))}, status: 400, errText: "q is given twice"},
		{name: "parameters in both the URL and the POST body", call: gwCall{method: "POST", token: boston, query: "queryParameters=" + url.QueryEscape(`{"groupcity":"BOSTON"}`), body: deckBody(guideQuery, map[string]any{"groupcity": "NEW YORK"})}, status: 400, errText: "both in the URL and in the body"},
		{name: "another group's token with this group's value", call: gwCall{token: ny, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)}, status: 403, errText: "does not hold the caller's group"},
		{name: "a comment is not the template: CARTO judges", call: gwCall{token: boston, query: deckQuery(guideQuery+" -- all", `{"groupcity":"NEW YORK"}`)}, status: 403, upstream: carto403},
		{name: "not a template, the literal grant: CARTO runs it", call: gwCall{token: boston, query: deckQuery(literal("BOSTON"), "")}, status: 200, upstream: passed200},
		{name: "not a template, another city's literal: CARTO refuses", call: gwCall{token: boston, query: deckQuery(literal("NEW YORK"), "")}, status: 403, upstream: carto403},
		{name: "no token", call: gwCall{query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)}, status: 401, errText: "token issued by this broker is required"},
		{name: "a token of another deployment", call: gwCall{token: foreign, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)}, status: 401, errText: "not one this broker holds"},
		{name: "two different tokens", call: gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`) + "&access_token=" + url.QueryEscape(ny)}, status: 400, errText: "two different tokens"},
		{name: "a follow-up route is CARTO's", call: gwCall{token: boston, path: "/v3/maps/carto_dw/query/tilejson", query: deckQuery(literal("BOSTON"), "")}, status: 404, errText: "point at CARTO"},
		{name: "another method", call: gwCall{method: "PUT", token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)}, status: 405},
		{name: "queryParameters not JSON", call: gwCall{token: boston, query: deckQuery(guideQuery, `{groupcity}`)}, status: 400, errText: "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.Emulator.Stats()
			a := do(t, base, tt.call)
			after := b.Emulator.Stats()
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			seen := after.Requests - before.Requests
			switch tt.upstream {
			case "":
				if seen != 0 {
					t.Fatalf("CARTO saw %d requests; the gateway must answer alone", seen)
				}
				m := a.json(t)
				if m["status"] != float64(tt.status) || !strings.Contains(m["error"].(string), tt.errText) {
					t.Fatalf("refusal %s, want CARTO's shape with %q", a.body, tt.errText)
				}
				if strings.Contains(string(a.body), "BOSTON") || strings.Contains(string(a.body), boston) {
					t.Fatalf("the refusal names the caller's group or token: %s", a.body)
				}
			case carto403:
				if after.Refused-before.Refused != 1 {
					t.Fatalf("CARTO refused %d requests, want 1", after.Refused-before.Refused)
				}
			case rewritten, passed200:
				if after.MapsQueries-before.MapsQueries != 1 {
					t.Fatalf("CARTO answered %d maps queries, want 1", after.MapsQueries-before.MapsQueries)
				}
				tilejson := a.json(t)["tilejson"].(map[string]any)["url"].([]any)[0].(string)
				u, err := url.Parse(tilejson)
				if err != nil || !strings.HasPrefix(tilejson, b.EmulatorURL) {
					t.Fatalf("tilejson URL %q does not point at CARTO (%s)", tilejson, b.EmulatorURL)
				}
				if q := u.Query(); q.Get("q") != literal("BOSTON") || q.Has("queryParameters") {
					t.Fatalf("the follow-up URL carries q=%q queryParameters=%q; want the literal grant alone", q.Get("q"), q.Get("queryParameters"))
				}
			}
		})
	}
}

// The rewritten query reads the caller's group's rows, through the SQL
// API, and through the tiles the instantiation points at.
func TestGatewayReadsOnlyTheCallersRows(t *testing.T) {
	b := brokertest.Start(t, brokertest.Demo())
	boston, _ := cartoToken(t, b, "user.boston@acme.com", "boston")
	base := b.RESTURL + "/carto"

	a := do(t, base, gwCall{path: "/v3/sql/carto_dw/query", token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)})
	if a.status != 200 {
		t.Fatalf("SQL API: %d %s", a.status, a.body)
	}
	rows := a.json(t)["rows"].([]any)
	want := b.StoresOf(t, "BOSTON")
	if len(rows) != want {
		t.Fatalf("SQL API: %d rows, want Boston's %d", len(rows), want)
	}
	for _, r := range rows {
		if city := r.(map[string]any)["city"]; city != "BOSTON" {
			t.Fatalf("SQL API returned a row of %v", city)
		}
	}

	inst := do(t, base, gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)}).json(t)
	tj := inst["tilejson"].(map[string]any)["url"].([]any)[0].(string)
	// deck.gl 9.0 appends its parameters with a literal '?'.
	doc := fetchJSON(t, tj+"?v=3.4&deckglVersion=9.0.14", boston)
	tile := strings.NewReplacer("{z}", "0", "{x}", "0", "{y}", "0").Replace(doc["tiles"].([]any)[0].(string))
	features := fetchJSON(t, tile, boston)["features"].([]any)
	if len(features) != want {
		t.Fatalf("world tile: %d features, want Boston's %d", len(features), want)
	}
	for _, f := range features {
		if city := f.(map[string]any)["properties"].(map[string]any)["city"]; city != "BOSTON" {
			t.Fatalf("a tile holds a store of %v", city)
		}
	}
}

func fetchJSON(t *testing.T, u, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&m) != nil {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return m
}

func TestGatewayRefusesRevokedTokens(t *testing.T) {
	b := brokertest.Start(t, brokertest.Demo())
	var login struct{ Token string }
	post(t, b.RESTURL+"/login", "", `{"username":"user.boston@acme.com","password":"boston"}`, &login)
	boston, _ := cartoToken(t, b, "user.boston@acme.com", "boston")
	base := b.RESTURL + "/carto"
	call := gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)}
	if a := do(t, base, call); a.status != 200 {
		t.Fatalf("before revocation: %d %s", a.status, a.body)
	}
	var revoked map[string]any
	post(t, b.RESTURL+"/v1/revoke", login.Token, `{"carto_token":"`+boston+`"}`, &revoked)
	a := do(t, base, call)
	if a.status != 401 || !strings.Contains(a.json(t)["error"].(string), "revoked") {
		t.Fatalf("after revocation: %d %s; want 401", a.status, a.body)
	}
	if a.header.Get("WWW-Authenticate") == "" {
		t.Error("a 401 without WWW-Authenticate")
	}
}

// Many loads of one group's map cost CARTO one instantiation per cache
// lifetime; the metrics count them.
func TestGatewayCachesInstantiations(t *testing.T) {
	b := brokertest.Start(t, brokertest.Demo())
	boston, _ := cartoToken(t, b, "user.boston@acme.com", "boston")
	base := b.RESTURL + "/carto"
	before := b.Emulator.Stats()
	const loads = 50
	for range loads {
		if a := do(t, base, gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)}); a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
	}
	if n := b.Emulator.Stats().MapsQueries - before.MapsQueries; n != 1 {
		t.Fatalf("%d identical loads cost CARTO %d instantiations, want 1", loads, n)
	}
	// A cached answer is served only to the request it was bound for: the
	// same request with New York's token, or with another city, is
	// refused as ever.
	ny, _ := cartoToken(t, b, "user.ny@acme.com", "ny")
	for name, c := range map[string]gwCall{
		"another group's token": {token: ny, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)},
		"another city":          {token: boston, query: deckQuery(guideQuery, `{"groupcity":"NEW YORK"}`)},
	} {
		if a := do(t, base, c); a.status != http.StatusForbidden {
			t.Errorf("%s, after the answer was cached: %d %s", name, a.status, a.body)
		}
	}
	metrics := string(do(t, b.RESTURL, gwCall{path: "/metrics"}).body)
	for series, want := range map[string]int{
		`tokenbroker_gateway_instantiations_total{result="hit"}`:                   loads - 1,
		`tokenbroker_gateway_instantiations_total{result="miss"}`:                  1,
		`tokenbroker_gateway_requests_total{api="maps",outcome="rewritten"}`:       loads,
		`tokenbroker_gateway_requests_total{api="maps",outcome="unauthenticated"}`: 0,
		`tokenbroker_gateway_requests_total{api="maps",outcome="refused"}`:         2,
	} {
		m := regexp.MustCompile(regexp.QuoteMeta(series) + ` (\d+)`).FindStringSubmatch(metrics)
		got := 0
		if m != nil {
			got, _ = strconv.Atoi(m[1])
		}
		if got != want {
			t.Errorf("%s = %d, want %d", series, got, want)
		}
	}
}

// A browser's preflight for the gateway is answered as CARTO answers it.
func TestGatewayPreflight(t *testing.T) {
	b := brokertest.Start(t, brokertest.Demo())
	a := do(t, b.RESTURL+"/carto", gwCall{method: http.MethodOptions, headers: map[string]string{
		"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization,content-type",
	}})
	h := a.header
	if a.status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") == "" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Type") ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", a.status, h)
	}
}

// Behind a load balancer, the browser's gateway call lands on any replica:
// a token issued by one is accepted by another (it reads the shared store),
// and a revocation on one is refused by the other at once.
func TestGatewayAcrossReplicas(t *testing.T) {
	rs := redistest.Start(t)
	emu := brokertest.StartEmulator(t)
	env := brokertest.Env(map[string]string{"REDIS_URL": rs.URL, "CARTO_GATEWAY_URL": "https://maps.example.com/carto"})
	a := brokertest.Start(t, brokertest.DemoUsers(), brokertest.WithEmulator(emu), env)
	b := brokertest.Start(t, brokertest.DemoUsers(), brokertest.WithEmulator(emu), env)

	var login struct{ Token string }
	post(t, a.RESTURL+"/login", "", `{"username":"user.boston@acme.com","password":"boston"}`, &login)
	boston, base := cartoToken(t, a, "user.boston@acme.com", "boston")
	if base != "https://maps.example.com/carto" {
		t.Fatalf("api_base_url %q, want CARTO_GATEWAY_URL", base)
	}
	call := gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`)}
	if r := do(t, b.RESTURL+"/carto", call); r.status != http.StatusOK {
		t.Fatalf("replica B, token of replica A: %d %s", r.status, r.body)
	}
	var revoked map[string]any
	post(t, a.RESTURL+"/v1/revoke", login.Token, `{"carto_token":"`+boston+`"}`, &revoked)
	if r := do(t, b.RESTURL+"/carto", call); r.status != http.StatusUnauthorized {
		t.Fatalf("replica B, after replica A revoked the token: %d %s; want 401", r.status, r.body)
	}
	// With the store gone, no token can be told from another: 503, closed.
	rs.Kill()
	r := do(t, b.RESTURL+"/carto", call)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.json(t)["error"].(string), "cannot check tokens") {
		t.Fatalf("replica B without Redis: %d %v %s; want 503 with Retry-After", r.status, r.header, r.body)
	}
}

// A policy's referers hold through the gateway: the browser's origin goes to
// CARTO with the rewritten request, and is part of the cache's key, so an
// answer given to an allowed origin is never served to another.
func TestGatewayKeepsReferers(t *testing.T) {
	const yaml = `
users:
  - {username: user.boston@acme.com, password_hash: "$2a$10$qN8jcbw5Vh/n23PA2JXl1OsgZNkQer1PUXFZZh75heal85AzWBkye", group: BOSTON}
groups:
  BOSTON:
    grants: [{connection: carto_dw, source: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = {{group}}"}]
    allowed_apis: [maps]
    referers: ["https://app.acme.com"]
    bound_parameters: {groupcity: "{{group}}"}
`
	b := brokertest.Start(t, brokertest.Config(yaml), brokertest.Env(map[string]string{"CARTO_GATEWAY_URL": "https://maps.acme.com/carto"}))
	boston, _ := cartoToken(t, b, "user.boston@acme.com", "boston")
	call := func(origin string) gwAnswer {
		return do(t, b.RESTURL+"/carto", gwCall{token: boston, query: deckQuery(guideQuery, `{"groupcity":"BOSTON"}`), headers: map[string]string{"Origin": origin}})
	}
	for _, step := range []struct {
		origin string
		status int
	}{
		{"https://app.acme.com", http.StatusOK},
		{"https://app.acme.com", http.StatusOK}, // from the cache
		{"https://evil.example", http.StatusForbidden},
	} {
		if a := call(step.origin); a.status != step.status {
			t.Fatalf("from %s: %d %s, want %d", step.origin, a.status, a.body, step.status)
		}
	}
}
