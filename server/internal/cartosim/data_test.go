package cartosim

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

const sqlPath = "/v3/sql/carto_dw/query"

type sqlBody struct {
	Meta struct {
		CacheHit            *bool  `json:"cacheHit"`
		Location            string `json:"location"`
		TotalBytesProcessed string `json:"totalBytesProcessed"`
	} `json:"meta"`
	Rows   []map[string]any `json:"rows"`
	Schema []schemaField    `json:"schema"`
}

func decodeSQL(t *testing.T, r response) sqlBody {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("sql: %d %s", r.status, r.body)
	}
	var b sqlBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("sql body %s: %v", r.body, err)
	}
	return b
}

// cities returns the distinct city values of rows, in order of appearance.
func cities(rows []map[string]any) []string {
	var out []string
	for _, r := range rows {
		c, _ := r["city"].(string)
		if len(out) == 0 || out[len(out)-1] != c {
			out = append(out, c)
		}
	}
	return out
}

func TestSQLBoston(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.createToken(e.oauth(), tokenReq("carto_dw", bostonSQL, "sql"))
	b := decodeSQL(t, e.do("GET", query(sqlPath, bostonSQL, ""), nil, bearer(tok)...))
	if len(b.Rows) != 6 || strings.Join(cities(b.Rows), ",") != "BOSTON" {
		t.Fatalf("rows: %v", b.Rows)
	}
	wantSchema := []schemaField{
		{"cartodb_id", "number"}, {"store_id", "string"}, {"storetype", "string"}, {"address", "string"},
		{"city", "string"}, {"state", "string"}, {"zip", "string"}, {"revenue", "number"},
		{"size_m2", "number"}, {"geom", "geography"},
	}
	assertJSONEqual(t, "schema", b.Schema, wantSchema)
	if b.Meta.CacheHit == nil || *b.Meta.CacheHit || b.Meta.Location != "US" || b.Meta.TotalBytesProcessed == "" || b.Meta.TotalBytesProcessed == "0" {
		t.Errorf("meta: %+v", b.Meta)
	}
	geom, _ := b.Rows[0]["geom"].(map[string]any)
	coords, _ := geom["coordinates"].([]any)
	if geom["type"] != "Point" || len(coords) != 2 {
		t.Fatalf("geom: %v", b.Rows[0]["geom"])
	}
	if lon, lat := coords[0].(float64), coords[1].(float64); lon < -71.2 || lon > -71.0 || lat < 42.3 || lat > 42.4 {
		t.Errorf("Boston store at %v,%v", lon, lat)
	}
	for _, r := range b.Rows {
		if r["state"] != "MA" || len(r) != 10 {
			t.Errorf("row %v", r)
		}
	}
	// Row keys keep column order on the wire.
	r := e.do("GET", query(sqlPath, bostonSQL, ""), nil, bearer(tok)...)
	if !strings.Contains(string(r.body), `"rows":[{"cartodb_id":1,"store_id":"1001","storetype":"Supermarket"`) {
		t.Errorf("row order: %.200s", r.body)
	}
}

func TestSQLQueries(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.createToken(e.oauth(), tokenReq("carto_dw", "*", "sql"))
	const tbl = "`carto-demo-data`.demo_tables.retail_stores"
	tests := []struct {
		name   string
		q, qp  string
		rows   int
		cities string
		cols   string // comma-separated schema names, "" to skip
	}{
		{"escaped quote", `SELECT * FROM ` + tbl + ` WHERE city = 'O\'FALLON'`, "", 2, "O'FALLON", ""},
		{"double quoted", `SELECT * FROM ` + tbl + ` WHERE city = "O'FALLON"`, "", 2, "O'FALLON", ""},
		{"E string", `SELECT * FROM ` + tbl + ` WHERE city = E'O\'FALLON'`, "", 2, "O'FALLON", ""},
		{"E string doubled quote", `SELECT * FROM ` + tbl + ` WHERE city = E'O''FALLON'`, "", 2, "O'FALLON", ""},
		{"unicode escape", `SELECT * FROM ` + tbl + ` WHERE city = 'O\u0027FALLON'`, "", 2, "O'FALLON", ""},
		{"hex escape", `SELECT * FROM ` + tbl + ` WHERE city = '\x42OSTON'`, "", 6, "BOSTON", ""},
		{"unquoted table", `select city from carto-demo-data.demo_tables.retail_stores where city = 'MIAMI'`, "", 2, "MIAMI", "city"},
		{"fully quoted table", "SELECT city, revenue FROM `carto-demo-data.demo_tables.retail_stores` WHERE city IN ('MIAMI', 'SEATTLE') ORDER BY city DESC", "", 5, "SEATTLE,MIAMI", "city,revenue"},
		{"not equal", `SELECT city FROM ` + tbl + ` WHERE city != 'BOSTON' AND city <> 'NEW YORK'`, "", 15, "", "city"},
		{"number and limit", `SELECT cartodb_id, city FROM ` + tbl + ` WHERE cartodb_id IN (1, 7, 27) ORDER BY cartodb_id DESC LIMIT 2`, "", 2, "O'FALLON,NEW YORK", "cartodb_id,city"},
		{"params", `SELECT * FROM ` + tbl + ` WHERE city = @c AND storetype = @t`, `{"c":"NEW YORK","t":"Supermarket"}`, 2, "NEW YORK", ""},
		{"numeric param", `SELECT * FROM ` + tbl + ` WHERE cartodb_id = @id`, `{"id":3}`, 1, "BOSTON", ""},
		{"null param", `SELECT * FROM ` + tbl + ` WHERE city = @c`, `{"c":null}`, 0, "", ""},
		{"comment and semicolon", "-- cache buster 1234\nSELECT * FROM " + tbl + " /* x */ WHERE city = 'CHICAGO';", "", 3, "CHICAGO", ""},
		{"limit 0", `SELECT * FROM ` + tbl + ` LIMIT 0`, "", 0, "", ""},
		{"all rows", `SELECT * FROM ` + tbl, "", 27, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := decodeSQL(t, e.do("GET", query(sqlPath, tc.q, tc.qp), nil, bearer(tok)...))
			if len(b.Rows) != tc.rows {
				t.Fatalf("%d rows, want %d: %v", len(b.Rows), tc.rows, b.Rows)
			}
			if tc.cities != "" && strings.Join(cities(b.Rows), ",") != tc.cities {
				t.Errorf("cities %v, want %s", cities(b.Rows), tc.cities)
			}
			if tc.cols != "" {
				var names []string
				for _, f := range b.Schema {
					names = append(names, f.Name)
				}
				if strings.Join(names, ",") != tc.cols {
					t.Errorf("schema %v, want %s", names, tc.cols)
				}
			}
		})
	}
}

func TestSQLErrors(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.createToken(e.oauth(), tokenReq("carto_dw", "*", "sql"))
	const tbl = "`carto-demo-data`.demo_tables.retail_stores"
	tests := []struct {
		name   string
		q, qp  string
		status int
		errSub string
	}{
		{"unknown column", `SELECT nope FROM ` + tbl, "", 400, "Column not found: nope"},
		{"unknown where column", `SELECT * FROM ` + tbl + ` WHERE town = 'X'`, "", 400, "Column not found: town"},
		{"unknown table", `SELECT * FROM carto-demo-data.demo_tables.other`, "", 404, "Table not found"},
		{"unbound param", `SELECT * FROM ` + tbl + ` WHERE city = @groupcity`, "", 400, "Query parameter 'groupcity' not found"},
		{"unbound param other given", `SELECT * FROM ` + tbl + ` WHERE city = @groupcity`, `{"city":"X"}`, 400, "Query parameter 'groupcity' not found"},
		{"positional params", `SELECT * FROM ` + tbl + ` WHERE city = @c`, `["X"]`, 400, "positional"},
		{"bad params JSON", `SELECT * FROM ` + tbl + ` WHERE city = @c`, `{"c":`, 400, "queryParameters"},
		{"type mismatch", `SELECT * FROM ` + tbl + ` WHERE city = 3`, "", 400, "No matching signature"},
		{"unterminated", `SELECT * FROM ` + tbl + ` WHERE city = 'BOSTON`, "", 400, "Unclosed string literal"},
		{"raw newline", "SELECT * FROM " + tbl + " WHERE city = 'BOS\nTON'", "", 400, "Unclosed string literal"},
		{"join", `SELECT * FROM ` + tbl + ` JOIN x ON a = b`, "", 400, "joins are not supported"},
		{"or", `SELECT * FROM ` + tbl + ` WHERE city = 'A' OR city = 'B'`, "", 400, "OR is"},
		{"function", `SELECT COUNT(*) FROM ` + tbl, "", 400, "functions are not supported"},
		{"less than", `SELECT * FROM ` + tbl + ` WHERE revenue < 5`, "", 400, "comparison operator < is"},
		{"update", `UPDATE x SET a = 1`, "", 400, "only SELECT"},
		{"empty q", ``, "", 400, "Missing required parameter: q"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", query(sqlPath, tc.q, tc.qp), nil, bearer(tok)...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			m := r.obj(t)
			if msg, _ := m["error"].(string); !strings.Contains(msg, tc.errSub) || m["status"] != float64(tc.status) {
				t.Errorf("body %s, want error containing %q", r.body, tc.errSub)
			}
			if strings.HasPrefix(tc.errSub, "Column not found") && m["column_name"] == nil {
				t.Errorf("no column_name in %s", r.body)
			}
		})
	}
	if st := e.sim.Stats(); st.SQLQueries != 0 || st.Refused != 0 {
		t.Errorf("errors were counted: %+v", st)
	}
}

func TestSQLPost(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.createToken(e.oauth(), tokenReq("carto_dw", groupSQL, "sql"))
	form := url.Values{"q": {groupSQL}, "queryParameters": {`{"groupcity":"MIAMI"}`}}
	tests := []struct {
		name    string
		path    string
		body    any
		headers []string
		rows    int
		status  int
	}{
		{"JSON object params", sqlPath, map[string]any{"q": groupSQL, "queryParameters": map[string]any{"groupcity": "NEW YORK"}}, bearer(tok), 6, 200},
		{"JSON string params", sqlPath, map[string]any{"q": groupSQL, "queryParameters": `{"groupcity":"NEW YORK"}`}, bearer(tok), 6, 200},
		{"JSON with token in body", sqlPath, map[string]any{"q": groupSQL, "queryParameters": map[string]any{"groupcity": "NEW YORK"}, "access_token": tok}, nil, 6, 200},
		{"form", sqlPath, form.Encode(), append(bearer(tok), "Content-Type", "application/x-www-form-urlencoded"), 2, 200},
		{"form, token in URL", sqlPath + "?access_token=" + tok, form.Encode(), []string{"Content-Type", "application/x-www-form-urlencoded"}, 2, 200},
		{"JSON q not string", sqlPath, map[string]any{"q": 5}, bearer(tok), 0, 400},
		{"bad JSON", sqlPath, `{"q":`, append(bearer(tok), "Content-Type", "application/json"), 0, 400},
		{"too large", sqlPath, `{"q":"` + strings.Repeat(" ", maxBody) + `"}`, append(bearer(tok), "Content-Type", "application/json"), 0, 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", tc.path, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 200 {
				if b := decodeSQL(t, r); len(b.Rows) != tc.rows {
					t.Errorf("%d rows, want %d", len(b.Rows), tc.rows)
				}
			}
		})
	}
}
