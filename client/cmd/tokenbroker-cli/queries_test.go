package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

func TestQueries(t *testing.T) {
	t.Parallel()
	c, _ := newCLI(t)

	// Without a bearer: the public query, a line per parameter.
	table := c.ok("", "queries")
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME ") ||
		!strings.HasPrefix(lines[1], "stores-by-city  sql,maps  true    city       string  required; one of: BOSTON, NEW YORK,") ||
		!strings.HasPrefix(lines[2], "                                  storetype  string  required; one of: Supermarket,") {
		t.Fatalf("queries without a bearer:\n%s", table)
	}

	c.env["TOKENBROKER_TOKEN"] = strings.TrimSpace(c.ok(brokertest.BostonPassword+"\n", "login", "--username", brokertest.BostonUser))
	table = c.ok("", "queries")
	if !strings.Contains(table, "\nmy-stores       sql,maps  false   city       -       bound to the caller's group\n") ||
		!strings.Contains(table, "storetype  string  default Supermarket; one of: ") {
		t.Fatalf("queries of Boston:\n%s", table)
	}

	var out struct {
		Queries []struct {
			Name       string   `json:"name"`
			APIs       []string `json:"apis"`
			Public     bool     `json:"public"`
			Parameters []struct {
				Name         string   `json:"name"`
				BoundTo      string   `json:"bound_to"`
				Type         string   `json:"type"`
				Required     bool     `json:"required"`
				DefaultValue string   `json:"default_value"`
				Allowed      []string `json:"allowed"`
			} `json:"parameters"`
		} `json:"queries"`
	}
	if err := json.Unmarshal([]byte(c.ok("", "--json", "queries")), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Queries) != 2 || out.Queries[0].Name != "my-stores" || out.Queries[0].Public || !out.Queries[1].Public ||
		strings.Join(out.Queries[0].APIs, ",") != "sql,maps" || len(out.Queries[0].Parameters) != 2 {
		t.Fatalf("queries --json: %+v", out)
	}
	if city, st := out.Queries[0].Parameters[0], out.Queries[0].Parameters[1]; city.BoundTo != "group" || city.Allowed == nil ||
		st.Type != "string" || st.Required || st.DefaultValue != "Supermarket" || !slices.Contains(st.Allowed, "Drugstore") {
		t.Fatalf("my-stores' parameters: %+v", out.Queries[0].Parameters)
	}
}

func TestQuery(t *testing.T) {
	t.Parallel()
	c, _ := newCLI(t)
	boston := strings.TrimSpace(c.ok(brokertest.BostonPassword+"\n", "login", "--username", brokertest.BostonUser))
	ny := strings.TrimSpace(c.ok(brokertest.NYPassword+"\n", "login", "--username", brokertest.NYUser))

	t.Run("table without a bearer", func(t *testing.T) {
		got := c.ok("", "query", "stores-by-city", "city=BOSTON", "storetype=Supermarket")
		want := `store_id  storetype    address           city    geom
1001      Supermarket  181 Cambridge St  BOSTON  {"coordinates":[-71.0658,42.361],"type":"Point"}
1002      Supermarket  60 Everett St     BOSTON  {"coordinates":[-71.1377,42.3573],"type":"Point"}
1004      Supermarket  33 Kilmarnock St  BOSTON  {"coordinates":[-71.099,42.3447],"type":"Point"}
`
		if got != want {
			t.Errorf("query printed\n%s\nwant\n%s", got, want)
		}
	})

	// Rows (--json) and features (--geojson, before or after the name) are
	// all of the caller's city.
	tests := []struct {
		name  string
		args  []string
		city  string
		count int
	}{
		{"own rows, default type", []string{"--token", boston, "--json", "query", "my-stores"}, "BOSTON", 3},
		{"own rows, a type", []string{"--token", boston, "--json", "query", "my-stores", "storetype=Drugstore"}, "BOSTON", 1},
		{"public rows", []string{"--json", "query", "stores-by-city", "city=NEW YORK", "storetype=Supermarket"}, "NEW YORK", 2},
		{"own features", []string{"--token", ny, "query", "--geojson", "my-stores"}, "NEW YORK", 2},
		{"own features, flag last", []string{"--token", ny, "query", "my-stores", "storetype=Drugstore", "--geojson"}, "NEW YORK", 1},
		{"--json changes nothing to GeoJSON", []string{"--token", boston, "--json", "query", "--geojson", "my-stores"}, "BOSTON", 3},
		{"public features", []string{"query", "--geojson", "stores-by-city", "city=CHICAGO", "storetype=Drugstore"}, "CHICAGO", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := c.ok("", tt.args...)
			var items []map[string]any
			if slices.Contains(tt.args, "--geojson") {
				if strings.Count(out, "\n") != 1 {
					t.Errorf("GeoJSON on %d lines, want 1", strings.Count(out, "\n"))
				}
				var fc struct {
					Type     string `json:"type"`
					Features []struct {
						Properties map[string]any `json:"properties"`
					} `json:"features"`
				}
				if err := json.Unmarshal([]byte(out), &fc); err != nil || fc.Type != "FeatureCollection" {
					t.Fatalf("not a FeatureCollection (%v): %s", err, out)
				}
				for _, f := range fc.Features {
					items = append(items, f.Properties)
				}
			} else {
				var res struct {
					Columns []struct{ Name, Type string } `json:"columns"`
					Rows    []map[string]any              `json:"rows"`
				}
				if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Columns) == 0 || res.Columns[0].Type == "" {
					t.Fatalf("not rows (%v): %s", err, out)
				}
				items = res.Rows
			}
			if len(items) != tt.count {
				t.Fatalf("%d rows or features, want %d: %s", len(items), tt.count, out)
			}
			for _, it := range items {
				if it["city"] != tt.city {
					t.Fatalf("one of %v, want only %s", it["city"], tt.city)
				}
			}
		})
	}

	t.Run("refusals exit 1", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--token", boston, "query", "my-stores", "storetype=Bakery"}, "error: InvalidArgument: parameter storetype must be one of: "},
			{[]string{"--token", boston, "query", "--geojson", "my-stores", "city=NEW YORK"}, "error: InvalidArgument: parameter city "},
			{[]string{"query", "stores-by-city", "storetype=Drugstore"}, "error: InvalidArgument: parameter city is required"},
			{[]string{"query", "my-stores"}, "error: PermissionDenied: "},
			{[]string{"--token", boston, "--json", "query", "nope"}, "error: NotFound: "},
		} {
			r := c.run("", tc.args...)
			if r.code != 1 || !strings.HasPrefix(r.stderr, tc.want) || r.stdout != "" || strings.Contains(r.stderr, "SELECT") {
				t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1 and %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
			}
		}
	})
}
