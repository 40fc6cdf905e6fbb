package cartosim

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

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

// TestMapsFlow follows a maps instantiation as deck.gl does, by GET and by
// POST: the instantiation, its GeoJSON, its TileJSON and tiles, each
// re-authorising the token sent with it.
func TestMapsFlow(t *testing.T) {
	for _, post := range []bool{false, true} {
		name := "GET"
		if post {
			name = "POST"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, Config{})
			oauth := e.oauth()
			m := &mapsFlow{
				env:     e,
				tok:     e.createToken(oauth, tokenReq("carto_dw", groupSQL, "maps")),
				sqlOnly: e.createToken(oauth, tokenReq("carto_dw", groupSQL, "sql")),
			}
			inst := m.instantiate(t, post)
			gjURL, tjURL := m.path(inst.GeoJSON.URL[0]), m.path(inst.TileJSON.URL[0])
			m.checkGeoJSON(t, gjURL, inst.Size)
			tile := m.checkTileJSON(t, tjURL)
			m.checkTiles(t, tile)

			// Every follow-up re-authorises the token sent with it.
			for _, u := range []string{gjURL, tjURL, tile("10", "309", "378")} {
				if r := e.do("GET", u, nil); r.status != 401 {
					t.Errorf("%s without token: %d", u, r.status)
				}
				if r := e.do("GET", u, nil, bearer(m.sqlOnly)...); r.status != 403 {
					t.Errorf("%s with sql-only token: %d", u, r.status)
				}
				if r := e.do("GET", u+"&access_token="+m.tok, nil); r.status != 200 {
					t.Errorf("%s with access_token: %d", u, r.status)
				}
			}
			e.do("DELETE", "/v3/tokens/"+m.tok, nil, bearer(oauth)...)
			if r := e.do("GET", tjURL, nil, bearer(m.tok)...); r.status != 401 {
				t.Errorf("tilejson with deleted token: %d", r.status)
			}
			if st := e.sim.Stats(); st.MapsQueries != 8 {
				t.Errorf("MapsQueries = %d, want 8", st.MapsQueries)
			}
		})
	}
}

// mapsFlow is one maps instantiation and its follow-ups, with a maps token
// and a token of the SQL API only.
type mapsFlow struct {
	*env
	tok, sqlOnly string
}

// mapsInstance is the instantiation's answer.
type mapsInstance struct {
	NRows    int                    `json:"nrows"`
	Size     int                    `json:"size"`
	Schema   []schemaField          `json:"schema"`
	TileJSON struct{ URL []string } `json:"tilejson"`
	GeoJSON  struct{ URL []string } `json:"geojson"`
}

const mapsGroupParams = `{"groupcity":"BOSTON"}`

// instantiate sends the instantiation (POST with a JSON body, or GET) and
// checks its answer and follow-up URLs.
func (m *mapsFlow) instantiate(t *testing.T, post bool) mapsInstance {
	t.Helper()
	var r response
	if post {
		r = m.do("POST", "/v3/maps/carto_dw/query", map[string]any{
			"q": groupSQL, "queryParameters": map[string]any{"groupcity": "BOSTON"},
			"spatialDataColumn": "geom", "spatialDataType": "geo", "v": "3.4", "client": "deck-gl-carto",
		}, bearer(m.tok)...)
	} else {
		r = m.do("GET", query("/v3/maps/carto_dw/query", groupSQL, mapsGroupParams, "spatialDataColumn", "geom",
			"spatialDataType", "geo", "tileResolution", "0.5", "v", "3.4", "client", "deck-gl-carto"), nil, bearer(m.tok)...)
	}
	if r.status != 200 {
		t.Fatalf("instantiate: %d %s", r.status, r.body)
	}
	var inst mapsInstance
	if err := json.Unmarshal(r.body, &inst); err != nil {
		t.Fatal(err)
	}
	if inst.NRows != 6 || len(inst.Schema) != 10 || len(inst.TileJSON.URL) != 1 || len(inst.GeoJSON.URL) != 1 {
		t.Fatalf("instantiation: %s", r.body)
	}
	for _, u := range []string{inst.GeoJSON.URL[0], inst.TileJSON.URL[0]} {
		if !strings.HasPrefix(u, m.srv.URL+"/v3/maps/carto_dw/query/") || strings.Contains(u, m.tok) {
			t.Errorf("follow-up URL %s", u)
		}
		pu, _ := url.Parse(u)
		if pu.Query().Get("q") != groupSQL || pu.Query().Get("queryParameters") != mapsGroupParams {
			t.Errorf("follow-up URL params %v", pu.Query())
		}
	}
	return inst
}

// path is the path and query of a URL of the emulator.
func (m *mapsFlow) path(u string) string { return strings.TrimPrefix(u, m.srv.URL) }

// checkGeoJSON fetches the GeoJSON follow-up, of size bytes as announced.
func (m *mapsFlow) checkGeoJSON(t *testing.T, path string, size int) {
	t.Helper()
	r := m.do("GET", path, nil, bearer(m.tok)...)
	if r.status != 200 || r.header.Get("Content-Type") != "application/geo+json" {
		t.Fatalf("geojson: %d %s", r.status, r.header.Get("Content-Type"))
	}
	if len(r.body) != size {
		t.Errorf("size %d, geojson has %d bytes", size, len(r.body))
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
}

// checkTileJSON fetches the TileJSON follow-up and returns the path of a
// tile of its template.
func (m *mapsFlow) checkTileJSON(t *testing.T, path string) (tile func(z, x, y string) string) {
	t.Helper()
	r := m.do("GET", path, nil, bearer(m.tok)...)
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
	if !strings.HasPrefix(tmpl, m.srv.URL+"/v3/maps/carto_dw/query/{z}/{x}/{y}?") || !strings.HasSuffix(tmpl, "&formatTiles=geojson") {
		t.Fatalf("tiles template %s", tmpl)
	}
	return func(z, x, y string) string {
		return m.path(strings.NewReplacer("{z}", z, "{x}", x, "{y}", y).Replace(tmpl))
	}
}

// checkTiles fetches one tile covering Boston (z=10), one elsewhere, and
// one out of range.
func (m *mapsFlow) checkTiles(t *testing.T, tile func(z, x, y string) string) {
	t.Helper()
	r := m.do("GET", tile("10", "309", "378"), nil, bearer(m.tok)...)
	if r.status != 200 || r.header.Get("Content-Type") != "application/geo+json" {
		t.Fatalf("tile: %d %s", r.status, r.body)
	}
	var tf geoJSON
	json.Unmarshal(r.body, &tf)
	if len(tf.Features) != 6 {
		t.Errorf("tile 10/309/378 has %d features, want 6", len(tf.Features))
	}
	r = m.do("GET", tile("10", "0", "0"), nil, bearer(m.tok)...)
	if json.Unmarshal(r.body, &tf); r.status != 200 || len(tf.Features) != 0 {
		t.Errorf("empty tile: %d %s", r.status, r.body)
	}
	if r := m.do("GET", tile("3", "8", "1"), nil, bearer(m.tok)...); r.status != 400 {
		t.Errorf("out-of-range tile: %d", r.status)
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

// deck.gl 9.0.x appends `?v=3.4&deckglVersion=…`, with a literal '?', to the
// TileJSON URL it is given, and its tiles URL likewise; the follow-ups still
// answer, and the URL's own q and queryParameters are the ones run (an
// appended q cannot replace the granted one).
func TestMapsFollowUpsSurviveAppendedQuery(t *testing.T) {
	e := newEnv(t, Config{})
	oauth := e.oauth()
	m := &mapsFlow{env: e, tok: e.createToken(oauth, tokenReq("carto_dw", groupSQL, "maps"))}
	inst := m.instantiate(t, false)
	const deckgl = "?v=3.4&deckglVersion=9.0.40"
	tile := m.checkTileJSON(t, m.path(inst.TileJSON.URL[0])+deckgl)
	m.checkTiles(t, func(z, x, y string) string { return tile(z, x, y) + deckgl })
	m.checkGeoJSON(t, m.path(inst.GeoJSON.URL[0])+deckgl, inst.Size)

	for name, suffix := range map[string]string{
		"another q":                "?q=" + url.QueryEscape("SELECT * FROM `carto-demo-data`.demo_tables.retail_stores"),
		"other queryParameters":    "?queryParameters=" + url.QueryEscape(`{"groupcity":"NEW YORK"}`),
		"an access_token appended": "?access_token=" + m.tok + "x",
	} {
		r := m.do("GET", tile("10", "309", "378")+suffix, nil, bearer(m.tok)...)
		var tf geoJSON
		if json.Unmarshal(r.body, &tf); r.status != 200 || len(tf.Features) != 6 || tf.Features[0].Properties["city"] != "BOSTON" {
			t.Errorf("%s: %d, %d features (%s)", name, r.status, len(tf.Features), r.body)
		}
	}
}
