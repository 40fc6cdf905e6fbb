package cartosim

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
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

func TestDataAuthorization(t *testing.T) {
	e := newEnv(t, Config{})
	oauth := e.oauth()
	mk := func(req map[string]any) string { return e.createToken(oauth, req) }
	exact := mk(tokenReq("carto_dw", bostonSQL, "sql", "maps"))
	mapsOnly := mk(tokenReq("carto_dw", bostonSQL, "maps"))
	refReq := tokenReq("carto_dw", bostonSQL, "sql")
	refReq["referers"] = []string{"https://app.example.com", "http://localhost:5173"}
	withRef := mk(refReq)
	tableGrant := mk(tokenReq("carto_dw", "carto-demo-data.demo_tables.retail_stores", "sql"))
	quotedTable := mk(tokenReq("carto_dw", "`carto-demo-data`.demo_tables.retail_stores", "sql"))
	wildcard := mk(tokenReq("carto_dw", "carto-demo-data.demo_tables.*", "sql"))
	shortWildcard := mk(tokenReq("carto_dw", "carto-demo-data.*", "sql"))
	otherConn := mk(tokenReq("other_conn", bostonSQL, "sql"))
	expReq := tokenReq("carto_dw", bostonSQL, "sql")
	expReq["expiration_date"] = e.clock.Now().Add(time.Hour).Format(time.RFC3339)
	expiring := mk(expReq)
	deleted := mk(tokenReq("carto_dw", bostonSQL, "sql"))
	e.do("DELETE", "/v3/tokens/"+deleted, nil, bearer(oauth)...)
	e.clock.Advance(time.Hour)

	nyQuery := strings.Replace(bostonSQL, "BOSTON", "NEW YORK", 1)
	unauthorized := `{"description":"A valid API access token is required","error":"Unauthorized","status":401}`
	tests := []struct {
		name    string
		path    string
		headers []string
		status  int
		body    string // exact JSON when set
	}{
		{"no token", query(sqlPath, bostonSQL, ""), nil, 401, unauthorized},
		{"oauth token", query(sqlPath, bostonSQL, ""), bearer(oauth), 401, ""},
		{"unknown token", query(sqlPath, bostonSQL, ""), bearer("eyJhbGciOiJIUzI1NiJ9.e30.x"), 401, ""},
		{"deleted token", query(sqlPath, bostonSQL, ""), bearer(deleted), 401, ""},
		{"expired token", query(sqlPath, bostonSQL, ""), bearer(expiring), 401, ""},
		{"exact grant", query(sqlPath, bostonSQL, ""), bearer(exact), 200, ""},
		{"exact grant, extra whitespace", query(sqlPath, "  "+bostonSQL+"\n", ""), bearer(exact), 200, ""},
		{"access_token parameter", query(sqlPath, bostonSQL, "", "access_token", exact), nil, 200, ""},
		{"query not granted", query(sqlPath, nyQuery, ""), bearer(exact), 403, `{"error":"You don't have permissions to read this resource","status":403}`},
		{"garbage not granted", query(sqlPath, "DROP TABLE x", ""), bearer(exact), 403, ""},
		{"other connection", query("/v3/sql/other_conn/query", bostonSQL, ""), bearer(exact), 403, ""},
		{"grant on other connection", query(sqlPath, bostonSQL, ""), bearer(otherConn), 403, ""},
		{"sql not allowed", query(sqlPath, bostonSQL, ""), bearer(mapsOnly), 403, `{"error":"Forbidden: this token does not allow the sql API","status":403}`},
		{"maps allowed", query("/v3/maps/carto_dw/query", bostonSQL, ""), bearer(mapsOnly), 200, ""},
		{"maps not allowed", query("/v3/maps/carto_dw/query", bostonSQL, ""), bearer(withRef), 403, ""},
		{"no referer", query(sqlPath, bostonSQL, ""), bearer(withRef), 403, `{"error":"Unauthorized referer","status":403}`},
		{"origin mismatch", query(sqlPath, bostonSQL, ""), append(bearer(withRef), "Origin", "https://evil.example.com"), 403, ""},
		{"origin with trailing slash", query(sqlPath, bostonSQL, ""), append(bearer(withRef), "Origin", "https://app.example.com/"), 403, ""},
		{"origin match", query(sqlPath, bostonSQL, ""), append(bearer(withRef), "Origin", "https://app.example.com"), 200, ""},
		{"referer match", query(sqlPath, bostonSQL, ""), append(bearer(withRef), "Referer", "http://localhost:5173/map?x=1"), 200, ""},
		{"referer mismatch port", query(sqlPath, bostonSQL, ""), append(bearer(withRef), "Referer", "http://localhost:5174/"), 403, ""},
		{"table grant", query(sqlPath, nyQuery, ""), bearer(tableGrant), 200, ""},
		{"backticked table grant", query(sqlPath, nyQuery, ""), bearer(quotedTable), 200, ""},
		{"table grant, other table", query(sqlPath, "SELECT * FROM carto-demo-data.demo_tables.other", ""), bearer(tableGrant), 403, ""},
		{"dataset wildcard", query(sqlPath, nyQuery, ""), bearer(wildcard), 200, ""},
		{"short wildcard", query(sqlPath, nyQuery, ""), bearer(shortWildcard), 403, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.sim.Stats().Refused
			r := e.do("GET", tc.path, nil, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.body != "" {
				assertJSONEqual(t, "body", r.obj(t), json.RawMessage(tc.body))
			}
			refused := e.sim.Stats().Refused - before
			if want := int64(0); tc.status == 401 || tc.status == 403 {
				if refused != 1 {
					t.Errorf("Refused grew by %d", refused)
				}
			} else if refused != want {
				t.Errorf("Refused grew by %d", refused)
			}
		})
	}
}

// TestGroupcityWeakness shows that a grant with an @parameter matches on
// text only: the caller picks the parameter value, as in CARTO's guide.
func TestGroupcityWeakness(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.createToken(e.oauth(), tokenReq("carto_dw", groupSQL, "sql", "maps"))
	for _, city := range []string{"BOSTON", "NEW YORK"} {
		qp := `{"groupcity":"` + city + `"}`
		b := decodeSQL(t, e.do("GET", query(sqlPath, groupSQL, qp), nil, bearer(tok)...))
		if len(b.Rows) != 6 || strings.Join(cities(b.Rows), ",") != city {
			t.Errorf("groupcity=%s: %v", city, cities(b.Rows))
		}
		r := e.do("GET", query("/v3/maps/carto_dw/query", groupSQL, qp, "spatialDataColumn", "geom", "spatialDataType", "geo", "v", "3.4"), nil, bearer(tok)...)
		if r.status != 200 || r.obj(t)["nrows"] != 6.0 {
			t.Errorf("maps groupcity=%s: %d %s", city, r.status, r.body)
		}
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

type geoJSON struct {
	Type     string `json:"type"`
	Features []struct {
		Type     string `json:"type"`
		Geometry struct {
			Type        string     `json:"type"`
			Coordinates [2]float64 `json:"coordinates"`
		} `json:"geometry"`
		Properties map[string]any `json:"properties"`
	} `json:"features"`
}

func TestMapsFlow(t *testing.T) {
	for _, post := range []bool{false, true} {
		name := "GET"
		if post {
			name = "POST"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, Config{})
			oauth := e.oauth()
			tok := e.createToken(oauth, tokenReq("carto_dw", groupSQL, "maps"))
			sqlOnly := e.createToken(oauth, tokenReq("carto_dw", groupSQL, "sql"))
			qp := `{"groupcity":"BOSTON"}`
			var r response
			if post {
				r = e.do("POST", "/v3/maps/carto_dw/query", map[string]any{
					"q": groupSQL, "queryParameters": map[string]any{"groupcity": "BOSTON"},
					"spatialDataColumn": "geom", "spatialDataType": "geo", "v": "3.4", "client": "deck-gl-carto",
				}, bearer(tok)...)
			} else {
				r = e.do("GET", query("/v3/maps/carto_dw/query", groupSQL, qp, "spatialDataColumn", "geom",
					"spatialDataType", "geo", "tileResolution", "0.5", "v", "3.4", "client", "deck-gl-carto"), nil, bearer(tok)...)
			}
			if r.status != 200 {
				t.Fatalf("instantiate: %d %s", r.status, r.body)
			}
			var inst struct {
				NRows    int                    `json:"nrows"`
				Size     int                    `json:"size"`
				Schema   []schemaField          `json:"schema"`
				TileJSON struct{ URL []string } `json:"tilejson"`
				GeoJSON  struct{ URL []string } `json:"geojson"`
			}
			if err := json.Unmarshal(r.body, &inst); err != nil {
				t.Fatal(err)
			}
			if inst.NRows != 6 || len(inst.Schema) != 10 || len(inst.TileJSON.URL) != 1 || len(inst.GeoJSON.URL) != 1 {
				t.Fatalf("instantiation: %s", r.body)
			}
			gjURL, tjURL := inst.GeoJSON.URL[0], inst.TileJSON.URL[0]
			for _, u := range []string{gjURL, tjURL} {
				if !strings.HasPrefix(u, e.srv.URL+"/v3/maps/carto_dw/query/") || strings.Contains(u, tok) {
					t.Errorf("follow-up URL %s", u)
				}
				pu, _ := url.Parse(u)
				if pu.Query().Get("q") != groupSQL || pu.Query().Get("queryParameters") != qp {
					t.Errorf("follow-up URL params %v", pu.Query())
				}
			}
			path := func(u string) string { return strings.TrimPrefix(u, e.srv.URL) }

			// GeoJSON, re-authorised.
			r = e.do("GET", path(gjURL), nil, bearer(tok)...)
			if r.status != 200 || r.header.Get("Content-Type") != "application/geo+json" {
				t.Fatalf("geojson: %d %s", r.status, r.header.Get("Content-Type"))
			}
			if len(r.body) != inst.Size {
				t.Errorf("size %d, geojson has %d bytes", inst.Size, len(r.body))
			}
			var fc geoJSON
			json.Unmarshal(r.body, &fc)
			if fc.Type != "FeatureCollection" || len(fc.Features) != 6 {
				t.Fatalf("geojson: %s", r.body)
			}
			f := fc.Features[0]
			if f.Type != "Feature" || f.Geometry.Type != "Point" || f.Properties["city"] != "BOSTON" || f.Properties["geom"] != nil || len(f.Properties) != 9 {
				t.Errorf("feature %+v", f)
			}

			// TileJSON, re-authorised.
			r = e.do("GET", path(tjURL), nil, bearer(tok)...)
			if r.status != 200 {
				t.Fatalf("tilejson: %d %s", r.status, r.body)
			}
			var tj struct {
				TileJSON     string        `json:"tilejson"`
				Tiles        []string      `json:"tiles"`
				MinZoom      *int          `json:"minzoom"`
				MaxZoom      int           `json:"maxzoom"`
				Bounds       []float64     `json:"bounds"`
				Center       []float64     `json:"center"`
				VectorLayers []vectorLayer `json:"vector_layers"`
				Schema       []schemaField `json:"schema"`
			}
			json.Unmarshal(r.body, &tj)
			if tj.TileJSON != "3.0.0" || len(tj.Tiles) != 1 || tj.MinZoom == nil || *tj.MinZoom != 0 || tj.MaxZoom != 14 ||
				len(tj.Bounds) != 4 || len(tj.Center) != 3 || len(tj.VectorLayers) != 1 || len(tj.Schema) != 10 {
				t.Fatalf("tilejson: %s", r.body)
			}
			if b := tj.Bounds; b[0] < -71.2 || b[2] > -71.0 || b[1] < 42.3 || b[3] > 42.4 {
				t.Errorf("bounds %v", b)
			}
			if tj.VectorLayers[0].Fields["city"] != "String" || tj.VectorLayers[0].Fields["revenue"] != "Number" {
				t.Errorf("vector_layers %+v", tj.VectorLayers)
			}
			tmpl := tj.Tiles[0]
			if !strings.HasPrefix(tmpl, e.srv.URL+"/v3/maps/carto_dw/query/{z}/{x}/{y}?") || !strings.HasSuffix(tmpl, "&formatTiles=geojson") {
				t.Fatalf("tiles template %s", tmpl)
			}

			// One tile covering Boston (z=10), and one elsewhere.
			tile := func(z, x, y string) string {
				return path(strings.NewReplacer("{z}", z, "{x}", x, "{y}", y).Replace(tmpl))
			}
			r = e.do("GET", tile("10", "309", "378"), nil, bearer(tok)...)
			if r.status != 200 || r.header.Get("Content-Type") != "application/geo+json" {
				t.Fatalf("tile: %d %s", r.status, r.body)
			}
			var tf geoJSON
			json.Unmarshal(r.body, &tf)
			if len(tf.Features) != 6 {
				t.Errorf("tile 10/309/378 has %d features, want 6", len(tf.Features))
			}
			r = e.do("GET", tile("10", "0", "0"), nil, bearer(tok)...)
			if json.Unmarshal(r.body, &tf); r.status != 200 || len(tf.Features) != 0 {
				t.Errorf("empty tile: %d %s", r.status, r.body)
			}
			if r := e.do("GET", tile("3", "8", "1"), nil, bearer(tok)...); r.status != 400 {
				t.Errorf("out-of-range tile: %d", r.status)
			}

			// Every follow-up re-authorises the token sent with it.
			for _, u := range []string{path(gjURL), path(tjURL), tile("10", "309", "378")} {
				if r := e.do("GET", u, nil); r.status != 401 {
					t.Errorf("%s without token: %d", u, r.status)
				}
				if r := e.do("GET", u, nil, bearer(sqlOnly)...); r.status != 403 {
					t.Errorf("%s with sql-only token: %d", u, r.status)
				}
				if r := e.do("GET", u+"&access_token="+tok, nil); r.status != 200 {
					t.Errorf("%s with access_token: %d", u, r.status)
				}
			}
			e.do("DELETE", "/v3/tokens/"+tok, nil, bearer(oauth)...)
			if r := e.do("GET", path(tjURL), nil, bearer(tok)...); r.status != 401 {
				t.Errorf("tilejson with deleted token: %d", r.status)
			}
			if st := e.sim.Stats(); st.MapsQueries != 8 {
				t.Errorf("MapsQueries = %d, want 8", st.MapsQueries)
			}
		})
	}
}

func TestMapsOptions(t *testing.T) {
	e := newEnv(t, Config{PublicURL: "https://carto.example.test/"})
	tok := e.createToken(e.oauth(), tokenReq("my conn", bostonSQL, "maps"))
	r := e.do("GET", query("/v3/maps/my%20conn/query", bostonSQL, ""), nil, bearer(tok)...)
	if r.status != 200 {
		t.Fatalf("instantiate: %d %s", r.status, r.body)
	}
	if !strings.Contains(string(r.body), `"url":["https://carto.example.test/v3/maps/my%20conn/query/tilejson?q=`) {
		t.Errorf("PublicURL not used: %s", r.body)
	}
	tests := []struct {
		v      string
		status int
	}{{"3.4", 400}, {"3.3", 400}, {"4.0", 400}, {"3.2", 200}, {"", 200}}
	for _, tc := range tests {
		r := e.do("GET", query("/v3/maps/my%20conn/query", bostonSQL, "", "geo_column", "geom", "v", tc.v), nil, bearer(tok)...)
		if r.status != tc.status {
			t.Errorf("geo_column with v=%q: %d %s", tc.v, r.status, r.body)
		}
	}
}
