package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
)

// queriesConfig: the demo's two users, a query of every group's own stores,
// one open to New York alone, one with an integer parameter, and a public
// one.
const queriesConfig = `
users:
  - {username: user.boston@acme.com, password_hash: "$2a$10$qN8jcbw5Vh/n23PA2JXl1OsgZNkQer1PUXFZZh75heal85AzWBkye", group: BOSTON}
  - {username: user.ny@acme.com, password_hash: "$2a$10$KSc9nNFavwVbb83BMH9Ri.yvxVEvIl2ysDu0KsVYvbQmU4JU6NZAm", group: NEW YORK}
queries:
  - name: my-stores
    connection: carto_dw
    sql: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = @city AND storetype = @storetype"
    apis: [sql, maps]
    groups: ["*"]
    cache_ttl: 1m
    params:
      - {name: city, bind: group}
      - {name: storetype, type: string, default: Supermarket, allowed: [Supermarket, Drugstore, Department Store]}
  - name: ny-only
    connection: carto_dw
    sql: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = 'NEW YORK'"
    apis: [sql]
    groups: [NEW YORK]
  - name: store
    connection: carto_dw
    sql: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE cartodb_id = @id AND city = @city"
    apis: [sql]
    groups: ["*"]
    params:
      - {name: city, bind: group}
      - {name: id, type: integer, required: true, min: "1", max: "100"}
  - name: stores-by-city
    connection: carto_dw
    sql: "SELECT store_id, storetype, city, geom FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = @city AND storetype = @storetype"
    apis: [sql, maps]
    public: true
    params:
      - {name: city, type: string, required: true, allowed: [BOSTON, NEW YORK, CHICAGO]}
      - {name: storetype, type: string, required: true, allowed: [Supermarket, Drugstore]}
`

// restAnswer is an answer to a GET.
type restAnswer struct {
	status int
	header http.Header
	body   []byte
}

// restQuery runs GET path with the bearer (if any) and reads its answer,
// which must never show the SQL.
func restQuery(t *testing.T, b *broker, path, bearer string) restAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.rest+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(body), "SELECT") {
		t.Errorf("GET %s: the answer shows the SQL: %s", path, body)
	}
	return restAnswer{status: resp.StatusCode, header: resp.Header, body: body}
}

func TestNamedQueriesOverREST(t *testing.T) {
	b := startBroker(t, brokertest.Config(queriesConfig), brokertest.Env(map[string]string{"PUBLIC_QUERIES_PER_MINUTE": "12"}))
	boston := b.login("user.boston@acme.com", "boston")
	tests := []struct {
		name   string
		path   string
		bearer string
		status int
		says   string // in the error message
		city   string // every row or feature's city, when 200
		count  int    // rows or features, when 200
	}{
		{name: "own rows, default type", path: "/v1/queries/my-stores", bearer: boston, status: 200, city: "BOSTON", count: 3},
		{name: "own rows, a type", path: "/v1/queries/my-stores?storetype=Drugstore", bearer: boston, status: 200, city: "BOSTON", count: 1},
		{name: "own features", path: "/v1/queries/my-stores/geojson?storetype=Supermarket", bearer: boston, status: 200, city: "BOSTON", count: 3},
		{name: "identity-bound parameter supplied", path: "/v1/queries/my-stores?city=NEW%20YORK", bearer: boston, status: 400, says: "parameter city is the caller's group: it cannot be supplied"},
		{name: "outside the allowed values", path: "/v1/queries/my-stores?storetype=Bakery", bearer: boston, status: 400, says: "parameter storetype must be one of: Supermarket, Drugstore, Department Store"},
		{name: "wrong type", path: "/v1/queries/store?id=first", bearer: boston, status: 400, says: "parameter id must be an integer"},
		{name: "out of range", path: "/v1/queries/store?id=101", bearer: boston, status: 400, says: "parameter id must be at most 100"},
		{name: "required missing", path: "/v1/queries/store", bearer: boston, status: 400, says: "parameter id is required"},
		{name: "unknown parameter", path: "/v1/queries/my-stores?limit=1", bearer: boston, status: 400, says: `unknown parameter "limit"`},
		{name: "given twice", path: "/v1/queries/my-stores?storetype=Drugstore&storetype=Supermarket", bearer: boston, status: 400, says: "given more than once"},
		{name: "unknown query", path: "/v1/queries/nope", bearer: boston, status: 404, says: `no query is named "nope"`},
		{name: "another group's query", path: "/v1/queries/ny-only", bearer: boston, status: 403, says: "not open to the caller's group"},
		{name: "not served through that API", path: "/v1/queries/ny-only/geojson", bearer: b.login("user.ny@acme.com", "ny"), status: 400, says: "not served through the maps API"},
		{name: "a group's query without credentials", path: "/v1/queries/my-stores", status: 403, says: "not open to the caller's group"},
		{name: "a bad bearer is refused, not ignored", path: "/v1/queries/stores-by-city?city=BOSTON&storetype=Drugstore", bearer: "garbage", status: 401},
		{name: "public query without credentials", path: "/v1/queries/stores-by-city?city=CHICAGO&storetype=Drugstore", status: 200, city: "CHICAGO", count: 1},
		{name: "public GeoJSON by URL", path: "/v1/queries/stores-by-city/geojson?city=NEW%20YORK&storetype=Supermarket", status: 200, city: "NEW YORK", count: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := restQuery(t, b, tt.path, tt.bearer)
			code, ctype, body := a.status, a.header.Get("Content-Type"), a.body
			if code != tt.status {
				t.Fatalf("%d %s, want %d", code, body, tt.status)
			}
			if code != 200 {
				var e struct{ Message string }
				if json.Unmarshal(body, &e) != nil || !strings.Contains(e.Message, tt.says) {
					t.Fatalf("message %s, want one saying %q", body, tt.says)
				}
				return
			}
			cities := citiesOf(t, body, strings.HasSuffix(strings.SplitN(tt.path, "?", 2)[0], "/geojson"), ctype)
			if len(cities) != tt.count {
				t.Fatalf("%d rows or features, want %d: %s", len(cities), tt.count, body)
			}
			for _, c := range cities {
				if c != tt.city {
					t.Fatalf("a row of %s, want only %s", c, tt.city)
				}
			}
		})
	}

	// Public queries are bounded per address: 12 a minute, in bursts of 2,
	// both spent by the table above.
	path := "/v1/queries/stores-by-city?" + url.Values{"city": {"BOSTON"}, "storetype": {"Drugstore"}}.Encode()
	var last int
	for range 3 {
		if last = restQuery(t, b, path, "").status; last == http.StatusTooManyRequests {
			break
		}
	}
	again := restQuery(t, b, path, "")
	if last != http.StatusTooManyRequests || again.status != http.StatusTooManyRequests || again.header.Get("Retry-After") == "" {
		t.Fatalf("past the public rate: %d, then %d with Retry-After %q", last, again.status, again.header.Get("Retry-After"))
	}
	// A caller with credentials is not held to it.
	if a := restQuery(t, b, path, boston); a.status != 200 {
		t.Fatalf("an authenticated caller of the public query: %d %s", a.status, a.body)
	}
}

// citiesOf reads the city of every row (or feature) of an answer.
func citiesOf(t *testing.T, body []byte, geojson bool, ctype string) []string {
	t.Helper()
	var out []string
	if geojson {
		if ctype != "application/geo+json" {
			t.Fatalf("GeoJSON served as %q", ctype)
		}
		var fc struct {
			Type     string `json:"type"`
			Features []struct {
				Properties map[string]any `json:"properties"`
			} `json:"features"`
		}
		if err := json.Unmarshal(body, &fc); err != nil || fc.Type != "FeatureCollection" {
			t.Fatalf("not a FeatureCollection (%v): %s", err, body)
		}
		for _, f := range fc.Features {
			out = append(out, f.Properties["city"].(string))
		}
		return out
	}
	var rows struct {
		Columns []struct{ Name string } `json:"columns"`
		Rows    []map[string]any        `json:"rows"`
	}
	if err := json.Unmarshal(body, &rows); err != nil || len(rows.Columns) == 0 {
		t.Fatalf("not rows (%v): %s", err, body)
	}
	for _, r := range rows.Rows {
		out = append(out, r["city"].(string))
	}
	return out
}

func TestNamedQueriesOverGRPC(t *testing.T) {
	b := startBroker(t, brokertest.Config(queriesConfig))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+b.login("user.ny@acme.com", "ny"))

	list, err := b.grpc.ListQueries(ctx, &tokenbrokerv1.ListQueriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, q := range list.GetQueries() {
		names = append(names, q.GetName())
	}
	if got := strings.Join(names, ","); got != "my-stores,ny-only,store,stores-by-city" {
		t.Fatalf("New York may run %s", got)
	}
	anon, err := b.grpc.ListQueries(context.Background(), &tokenbrokerv1.ListQueriesRequest{})
	if err != nil || len(anon.GetQueries()) != 1 || anon.GetQueries()[0].GetName() != "stores-by-city" {
		t.Fatalf("without credentials: %v, %v", anon, err)
	}

	rows, err := b.grpc.RunQuery(ctx, &tokenbrokerv1.RunQueryRequest{Name: "my-stores", Params: map[string]string{"storetype": "Drugstore"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows.GetRows()) != 1 || rows.GetRows()[0].GetFields()["city"].GetStringValue() != "NEW YORK" || rows.GetColumns()[0].GetName() != "cartodb_id" {
		t.Fatalf("New York's drugstores: %v", rows)
	}
	gj, err := b.grpc.RunQueryGeoJSON(ctx, &tokenbrokerv1.RunQueryGeoJSONRequest{Name: "my-stores"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range gj.GetFeatureCollection().GetFields()["features"].GetListValue().GetValues() {
		if city := f.GetStructValue().GetFields()["properties"].GetStructValue().GetFields()["city"].GetStringValue(); city != "NEW YORK" {
			t.Fatalf("a feature of %s", city)
		}
	}
	for name, tc := range map[string]struct {
		req  *tokenbrokerv1.RunQueryRequest
		code codes.Code
	}{
		"bound parameter supplied": {&tokenbrokerv1.RunQueryRequest{Name: "my-stores", Params: map[string]string{"city": "BOSTON"}}, codes.InvalidArgument},
		"unknown query":            {&tokenbrokerv1.RunQueryRequest{Name: "nope"}, codes.NotFound},
		"name over its bound":      {&tokenbrokerv1.RunQueryRequest{Name: strings.Repeat("q", 65)}, codes.InvalidArgument},
	} {
		_, err := b.grpc.RunQuery(ctx, tc.req)
		if status.Code(err) != tc.code || strings.Contains(status.Convert(err).Message(), "SELECT") {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}
}

// Identical requests at once cost CARTO one query; the metrics say so.
func TestNamedQueryResultsAreShared(t *testing.T) {
	b := startBroker(t, brokertest.Config(queriesConfig))
	boston := b.login("user.boston@acme.com", "boston")
	before := b.sim.Stats().SQLQueries
	const callers = 20
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if a := restQuery(t, b, "/v1/queries/my-stores?storetype=Department%20Store", boston); a.status != 200 {
				t.Errorf("%d %s", a.status, a.body)
			}
		})
	}
	wg.Wait()
	if n := b.sim.Stats().SQLQueries - before; n != 1 {
		t.Fatalf("%d identical requests cost CARTO %d queries, want 1", callers, n)
	}
	metrics := restQuery(t, b, "/metrics", "").body
	hits := 0
	for _, how := range []string{"hit", "shared"} {
		m := regexp.MustCompile(`tokenbroker_query_results_total\{result="` + how + `"\} (\d+)`).FindSubmatch(metrics)
		if m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			hits += n
		}
	}
	if hits != callers-1 || !strings.Contains(string(metrics), `tokenbroker_query_results_total{result="miss"} 1`) ||
		!strings.Contains(string(metrics), "tokenbroker_query_cache_bytes") {
		t.Fatalf("metrics: %d hits and shared, want %d:\n%s", hits, callers-1, grepLines(metrics, "tokenbroker_query"))
	}
}

func grepLines(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The token a group's queries run with is the broker's own: admins see it
// listed as queries/<group>, and it is never issued to anyone.
func TestQueryTokensAreListedNotIssued(t *testing.T) {
	withAdmin := strings.Replace(queriesConfig, "queries:\n", `  - {username: admin@acme.com, password_hash: "$2a$10$CSDv.pz71OZsrXdSbh6LleEZqrXo9L3wHqVcoHNKV.9pRnnDqhHyS", group: BOSTON, admin: true}
queries:
`, 1)
	b := startBroker(t, brokertest.Config(withAdmin))
	boston := b.login("user.boston@acme.com", "boston")
	if a := restQuery(t, b, "/v1/queries/my-stores", boston); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	admin := b.login("admin@acme.com", "admin")
	a := restQuery(t, b, "/v1/tokens", admin)
	code, body := a.status, a.body
	if code != 200 || !strings.Contains(string(body), `"group":"queries/BOSTON"`) {
		t.Fatalf("the tokens held: %d %s", code, body)
	}
	_, issued := b.post("/carto-token", boston, "")
	if issued["group"] != "BOSTON" || strings.Contains(fmt.Sprint(issued["grants"]), "@city") {
		t.Fatalf("Boston was issued %v", issued)
	}
}

// CARTO's faults reach the caller through the one error table: an outage
// or a rate limit is UNAVAILABLE (with retry-after for the latter), and
// neither shows the SQL. (A query CARTO refuses, INTERNAL, is TestStatus's
// and the carto package's.)
func TestNamedQueryCartoFaults(t *testing.T) {
	b := startBroker(t, brokertest.Config(strings.Replace(queriesConfig, "cache_ttl: 1m", "cache_ttl: 0s", 1)),
		brokertest.Env(map[string]string{"CARTO_CALL_TIMEOUT": "500ms", "CARTO_BREAKER_COOLDOWN": "100ms"}))
	boston := b.login("user.boston@acme.com", "boston")
	// Mint the query token while CARTO answers.
	if a := restQuery(t, b, "/v1/queries/my-stores", boston); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	tests := []struct {
		name       string
		faults     cartosim.Faults
		status     int
		retryAfter bool
		says       string
	}{
		{name: "down", faults: cartosim.Faults{Outage: cartosim.OutageUnavailable, Scope: cartosim.ScopeData}, status: 503, says: "CARTO cannot be reached"},
		// Last: the Retry-After pauses the SQL API for every caller.
		{name: "rate limited", faults: cartosim.Faults{RateLimit: true, RetryAfter: 7 * time.Second, Scope: cartosim.ScopeData}, status: 503, retryAfter: true, says: "CARTO is rate limiting the broker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.sim.SetFaults(tt.faults)
			defer b.sim.SetFaults(cartosim.Faults{})
			a := restQuery(t, b, "/v1/queries/my-stores?storetype=Drugstore", boston)
			if a.status != tt.status || (a.header.Get("Retry-After") != "") != tt.retryAfter || !strings.Contains(string(a.body), tt.says) {
				t.Fatalf("%d (Retry-After %q) %s; want %d saying %q", a.status, a.header.Get("Retry-After"), a.body, tt.status, tt.says)
			}
		})
	}
}
