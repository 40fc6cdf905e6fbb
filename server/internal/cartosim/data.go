package cartosim

import (
	"bytes"
	"encoding/json"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// dataRoute is one of the emulated data endpoints.
type dataRoute uint8

const (
	routeSQL      dataRoute = iota // /v3/sql/{conn}/query
	routeMaps                      // /v3/maps/{conn}/query
	routeGeoJSON                   // /v3/maps/{conn}/query/geojson
	routeTileJSON                  // /v3/maps/{conn}/query/tilejson
	routeTile                      // /v3/maps/{conn}/query/{z}/{x}/{y}
)

// dataParams are the parameters of a data request: the query string,
// overridden for POST by the body (JSON or form).
type dataParams struct {
	q         string
	qp        string // queryParameters as JSON text, "" when absent
	geoColumn bool
	version   string
	bodyToken string // access_token sent in a POST body
}

func dataError(status int, msg string) *httpError {
	return &httpError{status: status, body: map[string]any{"error": msg, "status": status}}
}

// serveData emulates the SQL and Maps APIs for /query sources.
func (s *Sim) serveData(w http.ResponseWriter, r *http.Request) {
	var segs []string
	for _, seg := range strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/v3/"), "/") {
		u, err := url.PathUnescape(seg)
		if err != nil {
			notFound(w, r)
			return
		}
		segs = append(segs, u)
	}
	route, allow, ok := matchDataRoute(segs)
	if !ok {
		notFound(w, r)
		return
	}
	if !slices.Contains(strings.Split(allow, ", "), r.Method) {
		methodNotAllowed(w, allow)
		return
	}
	if herr := s.serveQuery(w, r, route, segs); herr != nil {
		herr.write(w)
	}
}

// matchDataRoute recognises the data paths (segments after /v3/) and
// returns the methods they allow.
func matchDataRoute(segs []string) (dataRoute, string, bool) {
	if len(segs) < 3 || segs[1] == "" || segs[2] != "query" {
		return 0, "", false
	}
	switch {
	case segs[0] == "sql" && len(segs) == 3:
		return routeSQL, "GET, POST", true
	case segs[0] != "maps":
		return 0, "", false
	case len(segs) == 3:
		return routeMaps, "GET, POST", true
	case len(segs) == 4 && segs[3] == "geojson":
		return routeGeoJSON, http.MethodGet, true
	case len(segs) == 4 && segs[3] == "tilejson":
		return routeTileJSON, http.MethodGet, true
	case len(segs) == 6:
		return routeTile, http.MethodGet, true
	}
	return 0, "", false
}

func (s *Sim) serveQuery(w http.ResponseWriter, r *http.Request, route dataRoute, segs []string) *httpError {
	conn := segs[1]
	p, herr := readDataParams(w, r)
	if herr != nil {
		return herr
	}
	api := "maps"
	if route == routeSQL {
		api = "sql"
	}
	grants, herr := s.authorizeToken(r, p, api)
	if herr != nil {
		return herr
	}
	if api == "maps" && p.geoColumn && versionAtLeast(p.version, 3, 3) {
		return dataError(http.StatusBadRequest, "geo_column is not supported from v=3.3 on; use spatialDataColumn and spatialDataType")
	}
	if strings.TrimSpace(p.q) == "" {
		return dataError(http.StatusBadRequest, "Missing required parameter: q")
	}
	stmt, parseErr := parseSQL(p.q)
	if !slices.ContainsFunc(grants, func(g Grant) bool { return grantCovers(g, conn, p.q, stmt) }) {
		return s.refuse(http.StatusForbidden, map[string]any{"error": "You don't have permissions to read this resource", "status": http.StatusForbidden})
	}
	if parseErr != nil {
		return sqlHTTPError(parseErr)
	}
	params, herr := decodeQueryParameters(p.qp)
	if herr != nil {
		return herr
	}
	rs, err := s.data.execute(stmt, params)
	if err != nil {
		return sqlHTTPError(err)
	}
	base := s.baseURL(r)
	switch route {
	case routeSQL:
		s.count(func(st *Stats) { st.SQLQueries++ })
		writeJSON(w, http.StatusOK, sqlResponse(rs))
		return nil
	case routeMaps:
		gj, err := marshal(featureCollection(rs, nil))
		if err != nil {
			return dataError(http.StatusInternalServerError, "Internal Server Error")
		}
		resp := mapsInstantiation{
			NRows:    len(rs.rows),
			Size:     len(gj),
			Schema:   schemaOf(rs.cols),
			TileJSON: urlList{URL: []string{mapsURL(base, conn, "tilejson", p)}},
			GeoJSON:  urlList{URL: []string{mapsURL(base, conn, "geojson", p)}},
		}
		s.count(func(st *Stats) { st.MapsQueries++ })
		writeJSON(w, http.StatusOK, resp)
		return nil
	case routeGeoJSON:
		s.count(func(st *Stats) { st.MapsQueries++ })
		writeBody(w, http.StatusOK, "application/geo+json", featureCollection(rs, nil))
		return nil
	case routeTileJSON:
		s.count(func(st *Stats) { st.MapsQueries++ })
		writeJSON(w, http.StatusOK, tileJSONOf(rs, mapsURL(base, conn, "{z}/{x}/{y}", p)+"&formatTiles=geojson"))
		return nil
	}
	tb, ok := parseTile(segs[3], segs[4], segs[5])
	if !ok {
		return dataError(http.StatusBadRequest, "Invalid tile coordinates")
	}
	s.count(func(st *Stats) { st.MapsQueries++ })
	// Real CARTO serves binary tiles (application/vnd.carto-vector-tile) or
	// MVT; the emulator serves the tile's features as GeoJSON, which is
	// enough for tests and easy to inspect.
	writeBody(w, http.StatusOK, "application/geo+json", featureCollection(rs, tb.contains))
	return nil
}

func sqlHTTPError(err error) *httpError {
	se, ok := err.(*sqlError)
	if !ok {
		return dataError(http.StatusInternalServerError, err.Error())
	}
	body := map[string]any{"error": se.msg, "status": se.status}
	if se.column != "" {
		body["column_name"] = se.column // carto-react reads it
	}
	return &httpError{status: se.status, body: body}
}

// refuse counts a data-API refusal and builds its error.
func (s *Sim) refuse(status int, body map[string]any) *httpError {
	s.count(func(st *Stats) { st.Refused++ })
	return &httpError{status: status, body: body}
}

// authorizeToken checks the API access token of a data request, in the
// documented order, and returns its grants.
func (s *Sim) authorizeToken(r *http.Request, p *dataParams, api string) ([]Grant, *httpError) {
	raw := bearerToken(r)
	if raw == "" {
		raw = p.bodyToken
	}
	unauthorized := func(desc string) ([]Grant, *httpError) {
		return nil, s.refuse(http.StatusUnauthorized, map[string]any{"error": "Unauthorized", "description": desc, "status": http.StatusUnauthorized})
	}
	if raw == "" {
		return unauthorized("A valid API access token is required")
	}
	now := s.now()
	s.mu.Lock()
	t := s.tokens[raw]
	var info TokenInfo
	var expired bool
	if t != nil {
		info, expired = t.info.clone(), t.expired(now)
	}
	s.mu.Unlock()
	switch {
	case t == nil:
		return unauthorized("Invalid API access token")
	case info.Deleted:
		return unauthorized("The API access token has been deleted")
	case expired:
		return unauthorized("The API access token has expired")
	}
	forbidden := func(msg string) ([]Grant, *httpError) {
		return nil, s.refuse(http.StatusForbidden, map[string]any{"error": msg, "status": http.StatusForbidden})
	}
	if !slices.Contains(info.AllowedAPIs, api) {
		return forbidden("Forbidden: this token does not allow the " + api + " API")
	}
	if len(info.Referers) > 0 && !slices.Contains(info.Referers, requestOrigin(r)) {
		return forbidden("Unauthorized referer")
	}
	return info.Grants, nil
}

// requestOrigin is the Origin header, else the origin of the Referer.
func requestOrigin(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return o
	}
	u, err := url.Parse(r.Header.Get("Referer"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// grantCovers reports whether g authorises query q (parsed as stmt, nil if
// it does not parse) on connection conn.
//
// A query grant matches on the text only: any @parameters in it are bound
// by the caller's queryParameters. This reproduces the weakness of CARTO's
// reference guide, where a grant "... WHERE city = @groupcity" lets the
// browser choose the city.
func grantCovers(g Grant, conn, q string, stmt *selectStmt) bool {
	if g.ConnectionName != conn {
		return false
	}
	src := strings.TrimSpace(g.Source)
	switch {
	case src == "*" || src == strings.TrimSpace(q):
		return true
	case stmt == nil || strings.ContainsAny(src, " \t\r\n"):
		return false
	}
	name := strings.ReplaceAll(src, "`", "")
	table := strings.Join(stmt.Table, ".")
	if prefix, ok := strings.CutSuffix(name, "*"); ok {
		// project.dataset.* style wildcards; CARTO's CLI requires at least
		// two segments before the star.
		return strings.Count(prefix, ".") >= 2 && len(table) >= len(prefix) &&
			strings.EqualFold(table[:len(prefix)], prefix)
	}
	return strings.EqualFold(name, table)
}

// readDataParams merges the query string with a POST body, which may be
// JSON (what carto-api-client sends for long URLs) or a form (QGIS plugin).
func readDataParams(w http.ResponseWriter, r *http.Request) (*dataParams, *httpError) {
	vals := r.URL.Query()
	p := &dataParams{}
	if r.Method == http.MethodPost {
		body, status, desc := readBody(w, r)
		if status != 0 {
			return nil, dataError(status, desc)
		}
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch {
		case len(bytes.TrimSpace(body)) == 0:
		case isJSONBody(mt, body):
			if herr := mergeJSONParams(body, vals, p); herr != nil {
				return nil, herr
			}
		default:
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, dataError(http.StatusBadRequest, "Malformed form body")
			}
			for k, v := range form {
				if k == "access_token" {
					p.bodyToken = form.Get(k)
					continue
				}
				vals[k] = v
			}
		}
	}
	p.q = vals.Get("q")
	p.qp = vals.Get("queryParameters")
	p.geoColumn = vals.Has("geo_column")
	p.version = vals.Get("v")
	return p, nil
}

func mergeJSONParams(body []byte, vals url.Values, p *dataParams) *httpError {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return dataError(http.StatusBadRequest, "The request body must be a JSON object")
	}
	str := func(key string) (string, *httpError) {
		var s string
		if err := json.Unmarshal(m[key], &s); err != nil {
			return "", dataError(http.StatusBadRequest, key+" must be a string")
		}
		return s, nil
	}
	for k, raw := range m {
		var err *httpError
		switch k {
		case "q":
			var q string
			q, err = str(k)
			vals.Set(k, q)
		case "access_token":
			p.bodyToken, err = str(k)
		case "queryParameters":
			// An object as sent by clients, or the JSON text as in URLs.
			raw = bytes.TrimSpace(raw)
			switch {
			case string(raw) == "null":
			case len(raw) > 0 && raw[0] == '"':
				var s string
				s, err = str(k)
				vals.Set(k, s)
			default:
				var buf bytes.Buffer
				json.Compact(&buf, raw)
				vals.Set(k, buf.String())
			}
		default:
			// Other parameters (v, geo_column, client, ...) as text.
			var s string
			if json.Unmarshal(raw, &s) != nil {
				s = string(raw)
			}
			vals.Set(k, s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeQueryParameters parses BigQuery-style named parameters.
func decodeQueryParameters(text string) (map[string]any, *httpError) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, dataError(http.StatusBadRequest, "queryParameters is not valid JSON")
	}
	switch m := v.(type) {
	case map[string]any:
		return m, nil
	case nil:
		return nil, nil
	case []any:
		return nil, dataError(http.StatusBadRequest, "queryParameters must be an object of named @parameters; positional parameters are not supported")
	}
	return nil, dataError(http.StatusBadRequest, "queryParameters must be a JSON object")
}

// versionAtLeast reports whether a "major.minor" API version is at least
// major.minor; an absent or malformed version counts as old.
func versionAtLeast(v string, major, minor int) bool {
	ma, mi, _ := strings.Cut(v, ".")
	a, err1 := strconv.Atoi(ma)
	b, err2 := strconv.Atoi(mi)
	if err1 != nil || err2 != nil {
		return false
	}
	return a > major || (a == major && b >= minor)
}

// baseURL is where follow-up URLs point: PublicURL, else the request host.
func (s *Sim) baseURL(r *http.Request) string {
	if s.publicURL != "" {
		return s.publicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// mapsURL builds a follow-up URL under /v3/maps/{conn}/query/. It carries
// q and queryParameters, never the token: the caller sends it again.
func mapsURL(base, conn, suffix string, p *dataParams) string {
	v := url.Values{"q": {p.q}}
	if p.qp != "" {
		v.Set("queryParameters", p.qp)
	}
	return base + "/v3/maps/" + url.PathEscape(conn) + "/query/" + suffix + "?" + v.Encode()
}

type schemaField struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func schemaOf(cols []column) []schemaField {
	out := []schemaField{}
	for _, c := range cols {
		out = append(out, schemaField{c.name, c.typ.schemaType()})
	}
	return out
}

// orderedObject is a JSON object that keeps its keys in column order.
type orderedObject struct {
	keys []string
	vals []any
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type sqlMeta struct {
	CacheHit            bool   `json:"cacheHit"`
	Location            string `json:"location"`
	TotalBytesProcessed string `json:"totalBytesProcessed"`
}

type sqlResult struct {
	Meta   sqlMeta         `json:"meta"`
	Rows   []orderedObject `json:"rows"`
	Schema []schemaField   `json:"schema"`
}

func sqlResponse(rs *resultSet) sqlResult {
	res := sqlResult{
		Meta:   sqlMeta{Location: "US", TotalBytesProcessed: strconv.FormatInt(rs.bytes, 10)},
		Rows:   []orderedObject{},
		Schema: schemaOf(rs.cols),
	}
	keys := make([]string, len(rs.cols))
	for i, c := range rs.cols {
		keys[i] = c.name
	}
	for _, row := range rs.rows {
		res.Rows = append(res.Rows, orderedObject{keys: keys, vals: row})
	}
	return res
}

type urlList struct {
	URL []string `json:"url"`
}

type mapsInstantiation struct {
	NRows    int           `json:"nrows"`
	Size     int           `json:"size"`
	Schema   []schemaField `json:"schema"`
	TileJSON urlList       `json:"tilejson"`
	GeoJSON  urlList       `json:"geojson"`
}

type feature struct {
	Type       string        `json:"type"`
	Geometry   any           `json:"geometry"`
	Properties orderedObject `json:"properties"`
}

type featureCollectionDoc struct {
	Type     string    `json:"type"`
	Features []feature `json:"features"`
}

// geomIndex is the result column rendered as the feature geometry: geom if
// selected, else the first geography column, else -1.
func geomIndex(cols []column) int {
	first := -1
	for i, c := range cols {
		if c.typ == colGeo {
			if c.name == "geom" {
				return i
			}
			if first < 0 {
				first = i
			}
		}
	}
	return first
}

// featureCollection renders rows as GeoJSON; keep, if not nil, filters by
// geometry (rows without one are then dropped).
func featureCollection(rs *resultSet, keep func(point) bool) featureCollectionDoc {
	fc := featureCollectionDoc{Type: "FeatureCollection", Features: []feature{}}
	gi := geomIndex(rs.cols)
	var keys []string
	for i, c := range rs.cols {
		if i != gi {
			keys = append(keys, c.name)
		}
	}
	for _, row := range rs.rows {
		f := feature{Type: "Feature", Properties: orderedObject{keys: keys}}
		if gi >= 0 {
			pt := row[gi].(point)
			if keep != nil && !keep(pt) {
				continue
			}
			f.Geometry = pt
		} else if keep != nil {
			continue
		}
		for i, v := range row {
			if i != gi {
				f.Properties.vals = append(f.Properties.vals, v)
			}
		}
		fc.Features = append(fc.Features, f)
	}
	return fc
}

type vectorLayer struct {
	ID      string            `json:"id"`
	MinZoom int               `json:"minzoom"`
	MaxZoom int               `json:"maxzoom"`
	Fields  map[string]string `json:"fields"`
}

type tileJSONDoc struct {
	TileJSON     string        `json:"tilejson"`
	Scheme       string        `json:"scheme"`
	Tiles        []string      `json:"tiles"`
	MinZoom      int           `json:"minzoom"`
	MaxZoom      int           `json:"maxzoom"`
	Bounds       [4]float64    `json:"bounds"`
	Center       [3]float64    `json:"center"`
	VectorLayers []vectorLayer `json:"vector_layers"`
	Schema       []schemaField `json:"schema"`
}

const maxTileZoom = 14

// tileJSONOf describes the result as a TileJSON 3.0.0 document.
func tileJSONOf(rs *resultSet, tiles string) tileJSONDoc {
	doc := tileJSONDoc{
		TileJSON: "3.0.0",
		Scheme:   "xyz",
		Tiles:    []string{tiles},
		MaxZoom:  maxTileZoom,
		Bounds:   [4]float64{-180, -85.0511, 180, 85.0511},
		Schema:   schemaOf(rs.cols),
	}
	layer := vectorLayer{ID: "default", MaxZoom: maxTileZoom, Fields: map[string]string{}}
	gi := geomIndex(rs.cols)
	for i, c := range rs.cols {
		if i == gi {
			continue
		}
		if c.typ == colString {
			layer.Fields[c.name] = "String"
		} else {
			layer.Fields[c.name] = "Number"
		}
	}
	doc.VectorLayers = []vectorLayer{layer}
	if gi < 0 || len(rs.rows) == 0 {
		return doc
	}
	w, s, e, n := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, row := range rs.rows {
		p := row[gi].(point)
		w, s, e, n = min(w, p.lon), min(s, p.lat), max(e, p.lon), max(n, p.lat)
	}
	doc.Bounds = [4]float64{w, s, e, n}
	zoom := float64(12) // a single point
	if span := max(e-w, n-s); span > 0 {
		zoom = math.Max(0, math.Min(maxTileZoom, math.Floor(math.Log2(360/span))))
	}
	doc.Center = [3]float64{(w + e) / 2, (s + n) / 2, zoom}
	return doc
}

// tileBounds is the lon/lat extent of a web-mercator (XYZ) tile.
type tileBounds struct {
	west, south, east, north float64
	lastX, lastY             bool // edge tiles include their far edge
}

func parseTile(zs, xs, ys string) (tileBounds, bool) {
	z, err1 := strconv.Atoi(zs)
	x, err2 := strconv.Atoi(xs)
	y, err3 := strconv.Atoi(ys)
	if err1 != nil || err2 != nil || err3 != nil || z < 0 || z > 24 {
		return tileBounds{}, false
	}
	n := 1 << z
	if x < 0 || y < 0 || x >= n || y >= n {
		return tileBounds{}, false
	}
	lat := func(y int) float64 {
		return math.Atan(math.Sinh(math.Pi*(1-2*float64(y)/float64(n)))) * 180 / math.Pi
	}
	return tileBounds{
		west:  float64(x)/float64(n)*360 - 180,
		east:  float64(x+1)/float64(n)*360 - 180,
		north: lat(y),
		south: lat(y + 1),
		lastX: x == n-1,
		lastY: y == n-1,
	}, true
}

func (t tileBounds) contains(p point) bool {
	inX := p.lon >= t.west && (p.lon < t.east || (t.lastX && p.lon <= t.east))
	inY := p.lat <= t.north && (p.lat > t.south || (t.lastY && p.lat >= t.south))
	return inX && inY
}
