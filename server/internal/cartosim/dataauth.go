package cartosim

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

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
