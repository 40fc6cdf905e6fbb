package client_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/client"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

func newYork() client.Config {
	return client.Config{Username: brokertest.NYUser, Password: brokertest.NYPassword}
}

// anonymous is a client without credentials: it may run public queries.
func anonymous() client.Config { return client.Config{} }

func TestQueries(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	tests := []struct {
		name  string
		cfg   client.Config
		names []string
	}{
		{"a user", boston(), []string{"my-stores", "stores-by-city"}},
		{"without credentials", anonymous(), []string{"stores-by-city"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClient(t, b, tt.cfg)
			qs, err := c.Queries(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, q := range qs {
				names = append(names, q.Name)
			}
			if !slices.Equal(names, tt.names) {
				t.Fatalf("queries %q, want %q", names, tt.names)
			}
		})
	}

	c, _ := newClient(t, b, boston())
	qs, err := c.Queries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mine := qs[0]
	if mine.Public || !mine.Serves("sql") || !mine.Serves("maps") || len(mine.Parameters) != 2 {
		t.Fatalf("my-stores: %+v", mine)
	}
	city, storetype := mine.Parameters[0], mine.Parameters[1]
	if city.Name != "city" || city.BoundTo != "group" {
		t.Errorf("my-stores' city: %+v", city)
	}
	if storetype.Name != "storetype" || storetype.BoundTo != "" || storetype.Type != "string" || storetype.Required ||
		storetype.Default != "Supermarket" || !slices.Contains(storetype.Allowed, "Drugstore") {
		t.Errorf("my-stores' storetype: %+v", storetype)
	}
	public := qs[1]
	if !public.Public || len(public.Parameters) != 2 || !public.Parameters[0].Required || !slices.Contains(public.Parameters[0].Allowed, "CHICAGO") {
		t.Errorf("stores-by-city: %+v", public)
	}
	// A caller's change does not reach the next answer.
	qs[0].APIs[0] = "changed"
	again, err := c.Queries(t.Context())
	if err != nil || again[0].APIs[0] == "changed" {
		t.Fatalf("again: %v, %v", again, err)
	}
}

// queryCase is one run of a named query, for rows and for GeoJSON.
type queryCase struct {
	name   string
	cfg    client.Config
	query  string
	params map[string]string
	code   codes.Code // OK: it runs
	says   string     // in the error's message
	city   string     // of every row and feature
	count  int        // rows and features
}

var queryCases = []queryCase{
	{name: "own stores, default type", cfg: boston(), query: "my-stores", city: "BOSTON", count: 3},
	{name: "own stores, a type", cfg: boston(), query: "my-stores", params: map[string]string{"storetype": "Drugstore"}, city: "BOSTON", count: 1},
	{name: "New York's own stores", cfg: newYork(), query: "my-stores", city: "NEW YORK", count: 2},
	{name: "public query without credentials", cfg: anonymous(), query: "stores-by-city", params: map[string]string{"city": "CHICAGO", "storetype": "Drugstore"}, city: "CHICAGO", count: 1},
	{name: "public query with credentials", cfg: boston(), query: "stores-by-city", params: map[string]string{"city": "NEW YORK", "storetype": "Supermarket"}, city: "NEW YORK", count: 2},
	{name: "a value outside the allowed ones", cfg: boston(), query: "my-stores", params: map[string]string{"storetype": "Bakery"},
		code: codes.InvalidArgument, says: "parameter storetype must be one of"},
	{name: "an identity-bound parameter supplied", cfg: boston(), query: "my-stores", params: map[string]string{"city": "NEW YORK"},
		code: codes.InvalidArgument, says: "parameter city"},
	{name: "a required parameter missing", cfg: anonymous(), query: "stores-by-city", params: map[string]string{"storetype": "Drugstore"},
		code: codes.InvalidArgument, says: "parameter city is required"},
	{name: "an unknown parameter", cfg: boston(), query: "my-stores", params: map[string]string{"limit": "1"},
		code: codes.InvalidArgument, says: `unknown parameter "limit"`},
	{name: "a group's query without credentials", cfg: anonymous(), query: "my-stores", code: codes.PermissionDenied},
	{name: "an unknown query", cfg: boston(), query: "nope", code: codes.NotFound, says: "nope"},
	{name: "no name", cfg: boston(), query: "", code: codes.InvalidArgument, says: "client:"},
}

// checkError checks that err is tc's, that it names no SQL and that the
// call was made (at most) once: no code of tc is retried.
func (tc queryCase) checkError(t *testing.T, err error, cnt *counter, method string) {
	t.Helper()
	s, _ := status.FromError(err)
	if s.Code() != tc.code || !strings.Contains(s.Message(), tc.says) || strings.Contains(s.Message(), "SELECT") {
		t.Fatalf("error %v: want %v saying %q", err, tc.code, tc.says)
	}
	if n := cnt.count(method); n > 1 {
		t.Errorf("%s attempts = %d, want at most 1", method, n)
	}
}

func TestQuery(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	for _, tc := range queryCases {
		t.Run(tc.name, func(t *testing.T) {
			c, cnt := newClient(t, b, tc.cfg)
			res, err := c.Query(t.Context(), tc.query, tc.params)
			if tc.code != codes.OK {
				tc.checkError(t, err, cnt, "RunQuery")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) != tc.count {
				t.Fatalf("%d rows, want %d: %v", len(res.Rows), tc.count, res.Rows)
			}
			cols := map[string]string{}
			for _, col := range res.Columns {
				cols[col.Name] = col.Type
			}
			if cols["city"] != "string" || cols["geom"] != "geography" {
				t.Errorf("columns %+v", res.Columns)
			}
			for _, r := range res.Rows {
				if r["city"] != tc.city {
					t.Fatalf("a row of %v, want only %s", r["city"], tc.city)
				}
				if len(r) != len(res.Columns) {
					t.Errorf("row %v, columns %v", r, res.Columns)
				}
				if g, ok := r["geom"].(map[string]any); !ok || g["type"] != "Point" {
					t.Errorf("geom %#v, want a GeoJSON point", r["geom"])
				}
			}
		})
	}
}

func TestQueryGeoJSON(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	for _, tc := range queryCases {
		t.Run(tc.name, func(t *testing.T) {
			c, cnt := newClient(t, b, tc.cfg)
			raw, err := c.QueryGeoJSON(t.Context(), tc.query, tc.params)
			if tc.code != codes.OK {
				tc.checkError(t, err, cnt, "RunQueryGeoJSON")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var fc struct {
				Type     string `json:"type"`
				Features []struct {
					Type     string `json:"type"`
					Geometry struct {
						Type        string    `json:"type"`
						Coordinates []float64 `json:"coordinates"`
					} `json:"geometry"`
					Properties map[string]any `json:"properties"`
				} `json:"features"`
			}
			if err := json.Unmarshal(raw, &fc); err != nil || fc.Type != "FeatureCollection" {
				t.Fatalf("not a FeatureCollection (%v): %s", err, raw)
			}
			if len(fc.Features) != tc.count {
				t.Fatalf("%d features, want %d: %s", len(fc.Features), tc.count, raw)
			}
			for _, f := range fc.Features {
				if f.Type != "Feature" || f.Geometry.Type != "Point" || len(f.Geometry.Coordinates) != 2 {
					t.Errorf("feature %+v", f)
				}
				if f.Properties["city"] != tc.city {
					t.Fatalf("a feature of %v, want only %s", f.Properties["city"], tc.city)
				}
			}
		})
	}
}

// TestQueryRetries: UNAVAILABLE is retried; a public query run too often
// (RESOURCE_EXHAUSTED, with a retry-after) is not.
func TestQueryRetries(t *testing.T) {
	t.Parallel()
	// 6 a minute: bursts of 1.
	b := startBroker(t, map[string]string{"PUBLIC_QUERIES_PER_MINUTE": "6"})
	c, cnt := newClient(t, b, anonymous())
	cnt.inject = func(_ context.Context, method string, n int, _ []grpc.CallOption) error {
		if method == "RunQuery" && n <= 2 {
			return status.Error(codes.Unavailable, "injected")
		}
		return nil
	}
	params := map[string]string{"city": "BOSTON", "storetype": "Drugstore"}
	if _, err := c.Query(t.Context(), "stores-by-city", params); err != nil {
		t.Fatal(err)
	}
	if got := cnt.count("RunQuery"); got != 3 {
		t.Errorf("RunQuery attempts = %d, want 3", got)
	}
	_, err := c.QueryGeoJSON(t.Context(), "stores-by-city", params)
	wantCode(t, err, codes.ResourceExhausted)
	if got := cnt.count("RunQueryGeoJSON"); got != 1 {
		t.Errorf("RunQueryGeoJSON attempts = %d, want 1", got)
	}
}
