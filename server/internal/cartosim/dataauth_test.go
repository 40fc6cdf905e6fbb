package cartosim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

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
