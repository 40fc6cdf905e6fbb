package cartosim

import (
	"net/http"
	"net/url"
	"slices"
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

// serveQuery authorizes a data request, then runs its query. A query the
// token does not grant is refused (403) before any syntax error in it is
// reported.
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
	return s.respond(w, r, route, segs, p, rs)
}

// respond writes the result of a data request in the shape of its route,
// and counts it.
func (s *Sim) respond(w http.ResponseWriter, r *http.Request, route dataRoute, segs []string, p *dataParams, rs *resultSet) *httpError {
	conn, base := segs[1], s.baseURL(r)
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
