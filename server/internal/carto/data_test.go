package carto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

const (
	storesByCityAndType = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @city AND storetype = @storetype"
	revenueByCity       = "SELECT store_id, revenue FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @city ORDER BY revenue DESC"
	chicagoStores       = "SELECT store_id FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'CHICAGO'"
)

var bostonSupermarkets = map[string]any{"city": "BOSTON", "storetype": "Supermarket"}

// longQuery is a granted query whose GET URL passes maxGetURL: a store-type
// list padded with types no store has.
func longQuery() string {
	types := []string{"'Supermarket'"}
	for i := range 400 {
		types = append(types, fmt.Sprintf("'No such store type %04d'", i))
	}
	return "SELECT store_id, city, geom FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @city AND storetype IN (" + strings.Join(types, ", ") + ")"
}

// seenRequest is a request the emulator received.
type seenRequest struct {
	method, path, query, auth, contentType string
	urlLen                                 int
}

// dataEnv is a client talking to the emulator, with every request and every
// attempt the client reports recorded.
type dataEnv struct {
	sim    *cartosim.Sim
	srv    *httptest.Server
	client *Client
	clk    *clocktest.Clock

	mu       sync.Mutex
	requests []seenRequest
	attempts []string // endpoint/outcome
}

func newDataEnv(t *testing.T, simCfg cartosim.Config, tune func(*Config)) *dataEnv {
	t.Helper()
	e := &dataEnv{clk: clocktest.At(time.Now())}
	simCfg.ClientID, simCfg.ClientSecret = "client-1", secret
	simCfg.Now = e.clk.Now
	sim, err := cartosim.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v3/sql/") || strings.HasPrefix(r.URL.Path, "/v3/maps/") {
			e.mu.Lock()
			e.requests = append(e.requests, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), len(r.URL.String())})
			e.mu.Unlock()
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	cfg := Config{BaseURL: e.srv.URL, AuthURL: e.srv.URL + "/oauth/token", ClientID: "client-1", ClientSecret: secret, Now: e.clk.Now,
		Observe: func(endpoint, outcome string, _ time.Duration) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.attempts = append(e.attempts, endpoint+"/"+outcome)
		}}
	if tune != nil {
		tune(&cfg)
	}
	if e.client, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// token creates an API access token for apis whose grants are exactly sqls.
func (e *dataEnv) token(t *testing.T, apis []string, sqls ...string) string {
	t.Helper()
	req := CreateTokenRequest{AllowedAPIs: apis, ExpiresAt: e.clk.Now().Add(time.Hour), Name: "tokenbroker:queries:test"}
	for _, q := range sqls {
		req.Grants = append(req.Grants, Grant{ConnectionName: "carto_dw", Source: q})
	}
	tok, err := e.client.CreateToken(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	e.reset()
	return tok.Token
}

// reset forgets what was recorded so far.
func (e *dataEnv) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests, e.attempts = nil, nil
}

func (e *dataEnv) seen() ([]seenRequest, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.requests), slices.Clone(e.attempts)
}

// checkRequests checks the methods and paths of the data requests made, and
// that each carried the token as a bearer and nowhere else.
func checkRequests(t *testing.T, reqs []seenRequest, token string, want ...string) {
	t.Helper()
	var got []string
	for _, r := range reqs {
		got = append(got, r.method+" "+r.path)
		if r.auth != "Bearer "+token || strings.Contains(r.query, token) {
			t.Errorf("%s %s: Authorization %q, token in the URL %v", r.method, r.path, r.auth, strings.Contains(r.query, token))
		}
		// (A follow-up URL is CARTO's: the emulator's holds the query.)
		if r.method == http.MethodGet && strings.HasSuffix(r.path, "/query") && r.urlLen > maxGetURL {
			t.Errorf("GET of a %d-byte URL", r.urlLen)
		}
		if r.method == http.MethodPost && r.contentType != "application/json" {
			t.Errorf("POST with Content-Type %q", r.contentType)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestQueryRows(t *testing.T) {
	e := newDataEnv(t, cartosim.Config{}, nil)
	long := longQuery()
	tok := e.token(t, []string{"sql"}, storesByCityAndType, revenueByCity, chicagoStores, long)
	allColumns := []Column{{"cartodb_id", "number"}, {"store_id", "string"}, {"storetype", "string"}, {"address", "string"}, {"city", "string"},
		{"state", "string"}, {"zip", "string"}, {"revenue", "number"}, {"size_m2", "number"}, {"geom", "geography"}}
	tests := []struct {
		name     string
		sql      string
		params   map[string]any
		columns  []Column
		storeIDs []string // the store_id column, in order
		method   string
	}{
		{"Boston supermarkets", storesByCityAndType, bostonSupermarkets, allColumns, []string{"1001", "1002", "1004"}, http.MethodGet},
		{"columns and order as selected", revenueByCity, map[string]any{"city": "NEW YORK"}, []Column{{"store_id", "string"}, {"revenue", "number"}},
			[]string{"2002", "2001", "2003", "2005", "2004", "2006"}, http.MethodGet},
		{"no parameters", chicagoStores, nil, []Column{{"store_id", "string"}}, []string{"3001", "3002", "3003"}, http.MethodGet},
		{"no rows, columns still", storesByCityAndType, map[string]any{"city": "NOWHERE", "storetype": "Supermarket"}, allColumns, nil, http.MethodGet},
		{"a long query is POSTed", long, map[string]any{"city": "SEATTLE"}, []Column{{"store_id", "string"}, {"city", "string"}, {"geom", "geography"}}, []string{"6001"}, http.MethodPost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.reset()
			rows, err := e.client.QueryRows(context.Background(), QueryRequest{Token: tok, Connection: "carto_dw", SQL: tt.sql, Params: tt.params})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows.Columns, tt.columns) {
				t.Fatalf("columns %v, want %v", rows.Columns, tt.columns)
			}
			id := slices.IndexFunc(rows.Columns, func(c Column) bool { return c.Name == "store_id" })
			var ids []string
			for _, r := range rows.Rows {
				if len(r) != len(rows.Columns) {
					t.Fatalf("row %v has %d values for %d columns", r, len(r), len(rows.Columns))
				}
				ids = append(ids, r[id].(string))
			}
			if !slices.Equal(ids, tt.storeIDs) {
				t.Fatalf("store ids %v, want %v", ids, tt.storeIDs)
			}
			if rows.Bytes <= 0 {
				t.Errorf("Bytes = %d", rows.Bytes)
			}
			reqs, attempts := e.seen()
			checkRequests(t, reqs, tok, tt.method+" /v3/sql/carto_dw/query")
			if !slices.Equal(attempts, []string{"sql/ok"}) {
				t.Errorf("attempts observed %v, want [sql/ok]", attempts)
			}
			if tt.params == nil && len(reqs) == 1 && strings.Contains(reqs[0].query, "queryParameters") {
				t.Errorf("queryParameters sent for nil Params: %s", reqs[0].query)
			}
		})
	}

	// Values keep their JSON types: numbers as json.Number, geographies
	// as GeoJSON objects.
	rows, err := e.client.QueryRows(context.Background(), QueryRequest{Token: tok, Connection: "carto_dw", SQL: storesByCityAndType, Params: bostonSupermarkets})
	if err != nil {
		t.Fatal(err)
	}
	first := rows.Rows[0]
	if first[0] != json.Number("1") || first[7] != json.Number("1843250.5") || first[4] != "BOSTON" {
		t.Errorf("first row %#v", first)
	}
	geom, ok := first[9].(map[string]any)
	if !ok || geom["type"] != "Point" || !slices.Equal(geom["coordinates"].([]any), []any{json.Number("-71.0658"), json.Number("42.361")}) {
		t.Errorf("geom %#v", first[9])
	}
}

func TestQueryGeoJSON(t *testing.T) {
	e := newDataEnv(t, cartosim.Config{}, nil)
	long := longQuery()
	tok := e.token(t, []string{"maps"}, storesByCityAndType, long)
	tests := []struct {
		name     string
		sql      string
		params   map[string]any
		storeIDs []string
		method   string
	}{
		{"Boston supermarkets", storesByCityAndType, bostonSupermarkets, []string{"1001", "1002", "1004"}, http.MethodGet},
		{"a long query is POSTed", long, map[string]any{"city": "BOSTON"}, []string{"1001", "1002", "1004"}, http.MethodPost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.reset()
			b, err := e.client.QueryGeoJSON(context.Background(), QueryRequest{Token: tok, Connection: "carto_dw", SQL: tt.sql, Params: tt.params})
			if err != nil {
				t.Fatal(err)
			}
			var fc struct {
				Type     string
				Features []struct {
					Type     string
					Geometry struct {
						Type        string
						Coordinates []float64
					}
					Properties map[string]any
				}
			}
			if err := json.Unmarshal(b, &fc); err != nil || fc.Type != "FeatureCollection" {
				t.Fatalf("not a FeatureCollection (%v): %.200s", err, b)
			}
			var ids []string
			for _, f := range fc.Features {
				if f.Type != "Feature" || f.Geometry.Type != "Point" || len(f.Geometry.Coordinates) != 2 || f.Properties["city"] != "BOSTON" {
					t.Fatalf("feature %+v", f)
				}
				ids = append(ids, f.Properties["store_id"].(string))
			}
			if !slices.Equal(ids, tt.storeIDs) {
				t.Fatalf("store ids %v, want %v", ids, tt.storeIDs)
			}
			reqs, attempts := e.seen()
			checkRequests(t, reqs, tok, tt.method+" /v3/maps/carto_dw/query", "GET /v3/maps/carto_dw/query/geojson")
			if !slices.Equal(attempts, []string{"maps/ok", "maps/ok"}) {
				t.Errorf("attempts observed %v, want two maps/ok", attempts)
			}
		})
	}
}

func TestQueryLimits(t *testing.T) {
	e := newDataEnv(t, cartosim.Config{}, nil)
	tok := e.token(t, []string{"sql", "maps"}, storesByCityAndType)
	run := map[string]func(QueryRequest) error{
		"rows": func(r QueryRequest) error {
			_, err := e.client.QueryRows(context.Background(), r)
			return err
		},
		"geojson": func(r QueryRequest) error {
			_, err := e.client.QueryGeoJSON(context.Background(), r)
			return err
		},
	}
	tests := []struct {
		api      string
		maxRows  int
		maxBytes int64
		want     *LimitError // nil: accepted
		requests int         // made to CARTO
	}{
		{"rows", 3, 0, nil, 1},
		{"rows", 2, 0, &LimitError{"max_rows", 2}, 1},
		{"rows", 0, 3000, nil, 1},
		{"rows", 0, 500, &LimitError{"max_bytes", 500}, 1},
		{"geojson", 3, 0, nil, 2},
		{"geojson", 2, 0, &LimitError{"max_rows", 2}, 1}, // the instantiation's nrows: no download
		{"geojson", 0, 3000, nil, 2},
		{"geojson", 0, 500, &LimitError{"max_bytes", 500}, 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s rows %d bytes %d", tt.api, tt.maxRows, tt.maxBytes), func(t *testing.T) {
			e.reset()
			err := run[tt.api](QueryRequest{Token: tok, Connection: "carto_dw", SQL: storesByCityAndType, Params: bostonSupermarkets, MaxRows: tt.maxRows, MaxBytes: tt.maxBytes})
			var le *LimitError
			switch {
			case tt.want == nil && err != nil:
				t.Fatal(err)
			case tt.want != nil && (!errors.As(err, &le) || *le != *tt.want || !errors.Is(err, ErrResultTooLarge)):
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if reqs, _ := e.seen(); len(reqs) != tt.requests {
				t.Errorf("%d requests to CARTO, want %d", len(reqs), tt.requests)
			}
		})
	}
}

// endless answers a SQL API query with rows that never end, until the client
// goes away, and reports how many bytes it managed to write.
func endless(written chan<- int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int64
		defer func() { written <- n }()
		w.Header().Set("Content-Type", "application/json")
		row := []byte(`{"store_id":"1001","revenue":1843250.5},`)
		k, err := w.Write([]byte(`{"meta":{},"rows":[`))
		n += int64(k)
		for err == nil && r.Context().Err() == nil {
			k, err = w.Write(row)
			n += int64(k)
		}
	})
}

// An answer that never ends is refused at its limit, not buffered.
func TestQueryRowsEndlessAnswer(t *testing.T) {
	written := make(chan int64, 1)
	srv := httptest.NewServer(endless(written))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "a", ClientSecret: "b"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		maxRows  int
		maxBytes int64
		want     LimitError
	}{
		{1_000_000, 64 << 10, LimitError{"max_bytes", 64 << 10}},
		{100, 64 << 20, LimitError{"max_rows", 100}},
	}
	for _, tt := range tests {
		_, err := c.QueryRows(context.Background(), QueryRequest{Token: "t", Connection: "c", SQL: "SELECT 1", MaxRows: tt.maxRows, MaxBytes: tt.maxBytes})
		var le *LimitError
		if !errors.As(err, &le) || *le != tt.want {
			t.Fatalf("err = %v, want %v", err, tt.want)
		}
		srv.CloseClientConnections() // the handler sees the client gone
		if n := <-written; n < 4<<10 {
			t.Fatalf("the server wrote only %d bytes", n)
		}
	}
}

// Every failure is classified, and no error text holds the token or the SQL.
func TestQueryErrors(t *testing.T) {
	const ungranted = "SELECT store_id FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @city"
	tests := []struct {
		name    string
		simCfg  cartosim.Config
		apis    []string // of the token; sql and maps when nil
		token   func(t *testing.T, e *dataEnv, tok string) string
		sql     string
		params  map[string]any
		faults  cartosim.Faults
		timeout time.Duration
		want    error
		status  int
		detail  string // in the operator's detail
	}{
		{name: "unknown token", token: func(*testing.T, *dataEnv, string) string { return "not-a-carto-token" }, want: ErrTokenRefused, status: 401},
		{name: "deleted token", token: func(t *testing.T, e *dataEnv, tok string) string {
			if err := e.client.DeleteToken(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
			return tok
		}, want: ErrTokenRefused, status: 401, detail: "deleted"},
		{name: "expired token", token: func(_ *testing.T, e *dataEnv, tok string) string {
			e.clk.Advance(2 * time.Hour)
			return tok
		}, want: ErrTokenRefused, status: 401, detail: "expired"},
		{name: "query not granted", sql: ungranted, params: map[string]any{"city": "BOSTON"}, want: ErrTokenRefused, status: 403, detail: "permissions"},
		{name: "API not allowed", apis: []string{"imports"}, want: ErrTokenRefused, status: 403, detail: "does not allow"},
		{name: "parameter missing", params: map[string]any{"city": "BOSTON"}, want: ErrRejected, status: 400, detail: "storetype"},
		{name: "parameter of the wrong type", params: map[string]any{"city": 5, "storetype": "Supermarket"}, want: ErrRejected, status: 400, detail: "No matching signature"},
		{name: "no parameters bound", params: map[string]any{}, want: ErrRejected, status: 400, detail: "city"},
		{name: "server errors", faults: cartosim.Faults{ErrorRate: 1, Scope: cartosim.ScopeData}, want: ErrUnavailable, status: 500},
		{name: "outage 503", faults: cartosim.Faults{Outage: cartosim.OutageUnavailable, Scope: cartosim.ScopeData}, want: ErrUnavailable, status: 503},
		{name: "connection dropped", faults: cartosim.Faults{Outage: cartosim.OutageDrop, Scope: cartosim.ScopeData}, want: ErrUnavailable},
		{name: "rate limited", faults: cartosim.Faults{RateLimit: true, RetryAfter: 7 * time.Second, Scope: cartosim.ScopeData}, want: ErrRateLimited, status: 429},
		{name: "caller deadline", faults: cartosim.Faults{Outage: cartosim.OutageHang, Scope: cartosim.ScopeData}, timeout: 50 * time.Millisecond, want: context.DeadlineExceeded},
		{name: "GeoJSON on another origin", simCfg: cartosim.Config{PublicURL: "http://carto.invalid"}, want: ErrUnavailable, detail: "carto.invalid"},
	}
	for _, tt := range tests {
		for _, api := range []string{"sql", "maps"} {
			t.Run(tt.name+"/"+api, func(t *testing.T) {
				if tt.simCfg.PublicURL != "" && api == "sql" {
					t.Skip("the SQL API answers no URL")
				}
				e := newDataEnv(t, tt.simCfg, func(c *Config) { c.BreakerThreshold = -1 })
				apis := tt.apis
				if apis == nil {
					apis = []string{"sql", "maps"}
				}
				tok := e.token(t, apis, storesByCityAndType)
				if tt.token != nil {
					tok = tt.token(t, e, tok)
				}
				sql, params := storesByCityAndType, tt.params
				if tt.sql != "" {
					sql = tt.sql
				}
				if params == nil {
					params = bostonSupermarkets
				}
				e.sim.SetFaults(tt.faults)
				ctx := context.Background()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				req := QueryRequest{Token: tok, Connection: "carto_dw", SQL: sql, Params: params}
				var err error
				if api == "sql" {
					_, err = e.client.QueryRows(ctx, req)
				} else {
					_, err = e.client.QueryGeoJSON(ctx, req)
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				for _, secret := range []string{tok, sql, "retail_stores", "@city"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error %q holds %q", err, secret)
					}
				}
				var ce *Error
				if tt.status != 0 && (!errors.As(err, &ce) || ce.Status != tt.status) {
					t.Fatalf("err = %#v, want HTTP %d", err, tt.status)
				}
				if tt.detail != "" && (!errors.As(err, &ce) || !strings.Contains(ce.Detail, tt.detail)) {
					t.Errorf("detail of %v lacks %q", err, tt.detail)
				}
				if tt.want == ErrRateLimited && ce.RetryAfter != 7*time.Second {
					t.Errorf("RetryAfter = %v, want 7s", ce.RetryAfter)
				}
				_, attempts := e.seen()
				switch tt.name {
				case "server errors": // reads are retried
					if want := slices.Repeat([]string{api + "/server_error"}, 3); !slices.Equal(attempts, want) {
						t.Errorf("attempts %v, want %v", attempts, want)
					}
				case "rate limited": // a long Retry-After goes back to the caller
					if want := []string{api + "/rate_limited"}; !slices.Equal(attempts, want) {
						t.Errorf("attempts %v, want %v", attempts, want)
					}
				}
			})
		}
	}
}

// CARTO's message is kept for the operator, without the token or the SQL
// even when CARTO quotes them.
func TestQueryErrorDetailIsScrubbed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": "Syntax error in " + r.URL.Query().Get("q") + " run with " + r.Header.Get("Authorization")})
	}))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "a", ClientSecret: "b"})
	if err != nil {
		t.Fatal(err)
	}
	const tok, sql = "eyJ-api-access-token", "SELECT secret_column FROM hidden.layout WHERE x = @x"
	_, err = c.QueryRows(context.Background(), QueryRequest{Token: tok, Connection: "c", SQL: sql})
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrRejected) || !strings.Contains(ce.Detail, "Syntax error in [redacted] run with Bearer [redacted]") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "secret_column") {
		t.Fatalf("error %q holds the token or the SQL", err)
	}
}

// The data APIs' failures open their own breaker: token calls go on.
func TestQueryBreakerIsTheDataPlanes(t *testing.T) {
	e := newDataEnv(t, cartosim.Config{}, func(c *Config) { c.BreakerThreshold, c.MaxAttempts = 2, 1 })
	tok := e.token(t, []string{"sql"}, storesByCityAndType)
	e.sim.SetFaults(cartosim.Faults{ErrorRate: 1, Scope: cartosim.ScopeData})
	req := QueryRequest{Token: tok, Connection: "carto_dw", SQL: storesByCityAndType, Params: bostonSupermarkets}
	for range 3 {
		if _, err := e.client.QueryRows(context.Background(), req); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	}
	if reqs, attempts := e.seen(); len(reqs) != 2 || attempts[2] != "sql/circuit_open" {
		t.Fatalf("%d requests, attempts %v: want 2 and the third refused by the breaker", len(reqs), attempts)
	}
	if !e.client.Reachable() {
		t.Error("Reachable false: the data breaker closed the token plane")
	}
	if _, err := e.client.ListTokens(context.Background()); err != nil {
		t.Fatalf("list tokens while the data breaker is open: %v", err)
	}
}

// A 429 pauses its own endpoint: the SQL API waits, the Maps API does not.
func TestQueryRateLimitPausesItsEndpoint(t *testing.T) {
	e := newDataEnv(t, cartosim.Config{}, nil)
	tok := e.token(t, []string{"sql", "maps"}, storesByCityAndType)
	req := QueryRequest{Token: tok, Connection: "carto_dw", SQL: storesByCityAndType, Params: bostonSupermarkets}
	e.sim.SetFaults(cartosim.Faults{RateLimit: true, RetryAfter: 7 * time.Second, Scope: cartosim.ScopeData})
	if _, err := e.client.QueryRows(context.Background(), req); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	e.sim.SetFaults(cartosim.Faults{})
	_, err := e.client.QueryRows(context.Background(), req)
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrRateLimited) || ce.RetryAfter <= 0 || ce.RetryAfter > 7*time.Second {
		t.Fatalf("during the pause: %v, want rate limited", err)
	}
	if _, err := e.client.QueryGeoJSON(context.Background(), req); err != nil {
		t.Fatalf("the Maps API during the SQL API's pause: %v", err)
	}
	e.clk.Advance(7 * time.Second)
	if _, err := e.client.QueryRows(context.Background(), req); err != nil {
		t.Fatalf("after the pause: %v", err)
	}
	if _, attempts := e.seen(); !slices.Equal(attempts, []string{"sql/rate_limited", "sql/paused", "maps/ok", "maps/ok", "sql/ok"}) {
		t.Errorf("attempts %v", attempts)
	}
}

// The SQL API's answer is read whatever the order of its keys; the schema
// orders the columns, and rows missing a value get null.
func TestDecodeRows(t *testing.T) {
	tests := []struct {
		name, body string
		want       Rows
		err        error
	}{
		{"schema last", `{"meta":{"x":[1]},"rows":[{"b":"x","a":1},{"a":2,"b":"y"}],"schema":[{"name":"a","type":"number"},{"name":"b","type":"string"}]}`,
			Rows{Columns: []Column{{"a", "number"}, {"b", "string"}}, Rows: [][]any{{json.Number("1"), "x"}, {json.Number("2"), "y"}}}, nil},
		{"schema first, a value missing, a column unlisted", `{"schema":[{"name":"a","type":"number"}],"rows":[{"a":1},{"c":true}]}`,
			Rows{Columns: []Column{{"a", "number"}, {"c", ""}}, Rows: [][]any{{json.Number("1"), nil}, {nil, true}}}, nil},
		{"null rows", `{"rows":null,"schema":[]}`, Rows{Columns: []Column{}, Rows: [][]any{}}, nil},
		{"truncated", `{"rows":[{"a":1}`, Rows{}, ErrUnavailable},
		{"not an object", `[1,2]`, Rows{}, ErrUnavailable},
		{"rows not an array", `{"rows":{"a":1}}`, Rows{}, ErrUnavailable},
		{"trailing data", `{"rows":[]} {}`, Rows{}, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeRows(strings.NewReader(tt.body), http.Header{}, 10, 1<<10)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			got.Bytes = 0
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got.Columns) != len(tt.want.Columns) {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// A FeatureCollection is counted and checked before it is returned.
func TestReadFeatureCollection(t *testing.T) {
	two := `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":null,"properties":{}},{"type":"Feature","geometry":null,"properties":{}}]}`
	tests := []struct {
		name, body, contentLength string
		maxRows                   int
		err                       error
	}{
		{"two features", two, "", 2, nil},
		{"more features than max_rows", two, "", 1, ErrResultTooLarge},
		{"more bytes than max_bytes", two + strings.Repeat(" ", 1<<10), "", 2, ErrResultTooLarge},
		{"a Content-Length above max_bytes", "{}", "2000", 2, ErrResultTooLarge},
		{"not a FeatureCollection", `{"type":"Feature"}`, "", 2, ErrUnavailable},
		{"truncated", two[:50], "", 2, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.contentLength != "" {
				hdr.Set("Content-Length", tt.contentLength)
			}
			b, err := readFeatureCollection(strings.NewReader(tt.body), hdr, tt.maxRows, 1<<10)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && string(b) != tt.body {
				t.Fatalf("body changed: %s", b)
			}
		})
	}
}
