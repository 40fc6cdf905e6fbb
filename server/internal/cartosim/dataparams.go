package cartosim

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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

// readDataParams merges the query string with a POST body, which may be
// JSON (what carto-api-client sends for long URLs) or a form (QGIS plugin).
func readDataParams(w http.ResponseWriter, r *http.Request) (*dataParams, *httpError) {
	vals := queryValues(r.URL.RawQuery)
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

// queryValues parses a query string. A literal '?' in it starts parameters
// that a client appended to a URL it was given without looking for a query
// there already: deck.gl 9.0.x appends `?v=3.4&deckglVersion=…` to the
// TileJSON URL of a maps instantiation, which has a query of its own (see
// docs/CARTO-API.md). A value's own '?' reaches us encoded (%3F: browsers'
// URLSearchParams and encodeURIComponent encode it), so a literal one can
// only be such a seam. The appended parameters are read too; the URL's own
// win, so an appended q or queryParameters never replaces the granted one.
func queryValues(raw string) url.Values {
	parts := strings.Split(raw, "?")
	vals, _ := url.ParseQuery(parts[0])
	for _, part := range parts[1:] {
		more, _ := url.ParseQuery(part)
		for k, v := range more {
			if !vals.Has(k) {
				vals[k] = v
			}
		}
	}
	return vals
}
