package carto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The data plane: queries run with an API access token, through the SQL API
// (rows) and the Maps API (a GeoJSON FeatureCollection). See
// docs/CARTO-API.md §3.

// Operations and endpoints of the data plane, for pauses and metrics.
const (
	opQueryRows    = "query rows"
	opInstantiate  = "instantiate map"
	opFetchGeoJSON = "fetch geojson"
	endpointSQL    = "sql"
	endpointMaps   = "maps"
)

// Limits of a query result when a request leaves them zero.
const (
	DefaultQueryMaxRows  = 10_000
	DefaultQueryMaxBytes = 8 << 20
)

// maxGetURL is the longest URL sent as a GET; a longer request is a POST
// with a JSON body, as CARTO's own clients do (MAX_GET_LENGTH).
const maxGetURL = 8192

// QueryRequest is one query to run.
type QueryRequest struct {
	// Token is the API access token the query runs with (never the
	// broker's OAuth token). It must allow the API and grant the SQL.
	Token      string
	Connection string
	// SQL is the query, with @name parameters.
	SQL string
	// Params are the queryParameters, sent as a JSON object; nil sends
	// none. Values are what encoding/json makes of them.
	Params map[string]any
	// MaxRows bounds the rows (features for GeoJSON); MaxBytes the size of
	// CARTO's answer. A result beyond either is refused with a *LimitError.
	// Zero: DefaultQueryMaxRows, DefaultQueryMaxBytes.
	MaxRows  int
	MaxBytes int64
}

// Column is a column of a result, as CARTO's schema names and types it.
// Type is "" for a column the rows hold but the schema does not list.
type Column struct {
	Name string
	Type string
}

// Rows is the result of QueryRows.
type Rows struct {
	Columns []Column
	// Rows hold the values in column order, as CARTO sent them: string,
	// json.Number, bool, nil, map[string]any (a geometry, say) or []any.
	Rows [][]any
	// Bytes is the size of CARTO's answer.
	Bytes int64
}

// QueryRows runs a query through the SQL API and returns its rows, decoded
// as they arrive: a result beyond the request's limits is refused before
// more of it is read.
//
// Errors wrap ErrTokenRefused (CARTO refused the token), ErrRejected (CARTO
// refused the query: bad SQL, a missing parameter or table), ErrRateLimited
// (with RetryAfter), ErrUnavailable, ErrResultTooLarge (*LimitError), or the
// caller's own context error. No error holds the token or the SQL.
func (c *Client) QueryRows(ctx context.Context, req QueryRequest) (Rows, error) {
	req, err := req.checked(opQueryRows)
	if err != nil {
		return Rows{}, err
	}
	var out Rows
	_, err = c.queryCall(ctx, opQueryRows, req, endpointSQL, func(body io.Reader, hdr http.Header) error {
		var err error
		out, err = decodeRows(body, hdr, req.MaxRows, req.MaxBytes)
		return err
	})
	if err != nil {
		return Rows{}, err
	}
	return out, nil
}

// QueryGeoJSON runs a query through the Maps API and returns its result as
// a GeoJSON FeatureCollection, the bytes CARTO sent. It instantiates the
// query, then fetches the answer's geojson.url[0] with the same token, as
// CARTO's clients do. A result of more rows than MaxRows (the
// instantiation's nrows, then the features counted) or more bytes than
// MaxBytes is refused.
//
// Errors are those of QueryRows; a Maps API that offers no GeoJSON for the
// query is ErrRejected, and one whose GeoJSON URL is not on the CARTO base
// URL's origin (where the token may not go) is ErrUnavailable.
func (c *Client) QueryGeoJSON(ctx context.Context, req QueryRequest) ([]byte, error) {
	req, err := req.checked(opInstantiate)
	if err != nil {
		return nil, err
	}
	body, err := c.queryCall(ctx, opInstantiate, req, endpointMaps, nil)
	if err != nil {
		return nil, err
	}
	var inst struct {
		NRows   *int64 `json:"nrows"`
		GeoJSON *struct {
			URL   []string        `json:"url"`
			Error json.RawMessage `json:"error"`
		} `json:"geojson"`
	}
	if err := json.Unmarshal(body, &inst); err != nil {
		return nil, &Error{Op: opInstantiate, Kind: ErrUnavailable, Detail: "unreadable instantiation"}
	}
	if inst.NRows != nil && *inst.NRows > int64(req.MaxRows) {
		return nil, &LimitError{Limit: "max_rows", Value: int64(req.MaxRows)}
	}
	if inst.GeoJSON == nil || len(inst.GeoJSON.URL) == 0 || inst.GeoJSON.URL[0] == "" || len(inst.GeoJSON.Error) > 0 && string(inst.GeoJSON.Error) != "null" {
		return nil, &Error{Op: opInstantiate, Kind: ErrRejected, Detail: "the Maps API offers no GeoJSON for this query"}
	}
	target, err := c.sameOrigin(opFetchGeoJSON, inst.GeoJSON.URL[0])
	if err != nil {
		return nil, err
	}
	var out []byte
	status, respBody, hdr, err := c.send(ctx, opFetchGeoJSON, idempotent, func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, errors.New("cannot build the request")
		}
		r.Header.Set("Authorization", "Bearer "+req.Token)
		r.Header.Set("Accept", "application/geo+json, application/json")
		return r, nil
	}, func(body io.Reader, hdr http.Header) error {
		var err error
		out, err = readFeatureCollection(body, hdr, req.MaxRows, req.MaxBytes)
		return err
	})
	if err != nil {
		return nil, scrubError(err, req)
	}
	if status < 200 || status >= 300 {
		return nil, queryStatusError(opFetchGeoJSON, status, respBody, hdr, req)
	}
	return out, nil
}

// checked validates a request and fills in its default limits.
func (r QueryRequest) checked(op string) (QueryRequest, error) {
	switch {
	case r.Token == "":
		return r, fmt.Errorf("carto: %s: no API access token", op)
	case r.Connection == "":
		return r, fmt.Errorf("carto: %s: no connection", op)
	case strings.TrimSpace(r.SQL) == "":
		return r, fmt.Errorf("carto: %s: no SQL", op)
	case r.MaxRows < 0 || r.MaxBytes < 0:
		return r, fmt.Errorf("carto: %s: negative limits", op)
	}
	if r.MaxRows == 0 {
		r.MaxRows = DefaultQueryMaxRows
	}
	if r.MaxBytes == 0 {
		r.MaxBytes = DefaultQueryMaxBytes
	}
	return r, nil
}

// queryCall calls /v3/{api}/{connection}/query with the request's query:
// a GET, or a POST of a JSON body when the URL would be too long. A 2xx
// answer is handed to read, or returned (bounded) when read is nil.
func (c *Client) queryCall(ctx context.Context, op string, req QueryRequest, api string, read bodyReader) ([]byte, error) {
	endpoint := c.base.String() + "/v3/" + api + "/" + url.PathEscape(req.Connection) + "/query"
	vals := url.Values{"q": {req.SQL}}
	var params json.RawMessage
	if req.Params != nil {
		b, err := json.Marshal(req.Params)
		if err != nil {
			return nil, fmt.Errorf("carto: %s: queryParameters cannot be encoded as JSON", op)
		}
		params = b
		vals.Set("queryParameters", string(b))
	}
	method, target, payload := http.MethodGet, endpoint+"?"+vals.Encode(), []byte(nil)
	if len(target) > maxGetURL {
		b, err := json.Marshal(struct {
			Q               string          `json:"q"`
			QueryParameters json.RawMessage `json:"queryParameters,omitempty"`
		}{req.SQL, params})
		if err != nil {
			return nil, fmt.Errorf("carto: %s: the request cannot be encoded", op)
		}
		method, target, payload = http.MethodPost, endpoint, b
	}
	status, body, hdr, err := c.send(ctx, op, idempotent, func(ctx context.Context) (*http.Request, error) {
		return jsonRequest(ctx, method, target, req.Token, payload)
	}, read)
	if err != nil {
		return nil, scrubError(err, req)
	}
	if status < 200 || status >= 300 {
		return nil, queryStatusError(op, status, body, hdr, req)
	}
	return body, nil
}

// sameOrigin resolves a follow-up URL CARTO answered and checks that it is
// on the base URL's origin: the token is sent there.
func (c *Client) sameOrigin(op, raw string) (string, error) {
	u, err := c.base.Parse(raw)
	if err != nil {
		return "", &Error{Op: op, Kind: ErrUnavailable, Detail: "unreadable GeoJSON URL"}
	}
	if u.Scheme != c.base.Scheme || !strings.EqualFold(u.Host, c.base.Host) {
		return "", &Error{Op: op, Kind: ErrUnavailable, Detail: fmt.Sprintf("the GeoJSON URL is on %s://%s, not on the CARTO base URL's origin; the token is not sent there", u.Scheme, u.Host)}
	}
	return u.String(), nil
}

// queryStatusError classifies a non-2xx answer of the SQL or Maps API.
func queryStatusError(op string, status int, body []byte, hdr http.Header, req QueryRequest) error {
	e := &Error{Op: op, Status: status, Detail: scrub(upstreamText(body), req)}
	switch {
	case status == http.StatusTooManyRequests:
		e.Kind = ErrRateLimited
		e.RetryAfter = retryAfter(hdr.Get("Retry-After"))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind = ErrTokenRefused
	case status >= 500 || status < 400:
		e.Kind = ErrUnavailable
	default:
		e.Kind = ErrRejected
	}
	e.Detail = bounded(e.Detail)
	return e
}

// scrubError removes the token and the SQL from an *Error's detail.
func scrubError(err error, req QueryRequest) error {
	var ce *Error
	if errors.As(err, &ce) {
		ce.Detail = scrub(ce.Detail, req)
	}
	return err
}

// scrub removes the request's token and SQL from a text meant for the
// operator's log.
func scrub(s string, req QueryRequest) string {
	for _, secret := range []string{req.Token, strings.TrimSpace(req.SQL)} {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// tooLong reports a Content-Length above max, so a known-large answer is
// refused before it is read.
func tooLong(hdr http.Header, max int64) bool {
	n, err := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64)
	return err == nil && n > max
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errMalformed is an answer that does not follow CARTO's wire format.
func errMalformed(op, what string) error {
	return &Error{Op: op, Kind: ErrUnavailable, Detail: "malformed " + what}
}

// decodeRows reads a SQL API answer, {"meta", "rows": [{column: value}],
// "schema": [{name, type}]} in any order, a row at a time, from at most
// maxBytes+1 bytes of body.
func decodeRows(body io.Reader, hdr http.Header, maxRows int, maxBytes int64) (Rows, error) {
	if tooLong(hdr, maxBytes) {
		return Rows{}, &LimitError{Limit: "max_bytes", Value: maxBytes}
	}
	cr := &countingReader{r: io.LimitReader(body, maxBytes+1)}
	dec := json.NewDecoder(cr)
	dec.UseNumber()
	var t rowTable
	err := t.decode(dec, maxRows)
	var le *LimitError
	switch {
	case errors.As(err, &le):
		return Rows{}, err
	case cr.n > maxBytes:
		return Rows{}, &LimitError{Limit: "max_bytes", Value: maxBytes}
	case err != nil:
		return Rows{}, errMalformed(opQueryRows, "SQL API answer")
	}
	out := t.rows()
	out.Bytes = cr.n
	return out, nil
}

// rowTable collects rows as they arrive: the columns in the order the rows
// name them, until the schema, which may come after the rows, says.
type rowTable struct {
	names  []string
	index  map[string]int
	data   [][]any
	schema []Column
}

func (t *rowTable) decode(dec *json.Decoder, maxRows int) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	t.index = map[string]int{}
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return err
		}
		switch key {
		case "rows":
			err = t.decodeRows(dec, maxRows)
		case "schema":
			var s []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			}
			if err = dec.Decode(&s); err == nil {
				t.schema = make([]Column, 0, len(s))
				for _, c := range s {
					t.schema = append(t.schema, Column(c))
				}
			}
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the answer")
	}
	return nil
}

func (t *rowTable) decodeRows(dec *json.Decoder, maxRows int) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err // null: no rows
	}
	if tok != json.Delim('[') {
		return errors.New("rows is not an array")
	}
	for dec.More() {
		if len(t.data) == maxRows {
			return &LimitError{Limit: "max_rows", Value: int64(maxRows)}
		}
		if err := expectDelim(dec, '{'); err != nil {
			return err
		}
		row := make([]any, len(t.names))
		for dec.More() {
			name, err := stringToken(dec)
			if err != nil {
				return err
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				return err
			}
			i, ok := t.index[name]
			if !ok {
				i = len(t.names)
				t.index[name] = i
				t.names = append(t.names, name)
			}
			for len(row) <= i {
				row = append(row, nil)
			}
			row[i] = v
		}
		if err := expectDelim(dec, '}'); err != nil {
			return err
		}
		t.data = append(t.data, row)
	}
	return expectDelim(dec, ']')
}

// rows puts the columns in the schema's order (then any the schema does not
// list, as the rows named them) and every row in that order.
func (t *rowTable) rows() Rows {
	cols := make([]Column, 0, max(len(t.schema), len(t.names)))
	listed := map[string]bool{}
	for _, c := range t.schema {
		if !listed[c.Name] {
			listed[c.Name] = true
			cols = append(cols, c)
		}
	}
	for _, n := range t.names {
		if !listed[n] {
			cols = append(cols, Column{Name: n})
		}
	}
	order := make([]int, len(cols)) // column j is the rows' index order[j], -1 if none
	inOrder := len(cols) == len(t.names)
	for j, c := range cols {
		i, ok := t.index[c.Name]
		if !ok {
			i = -1
		}
		order[j] = i
		inOrder = inOrder && i == j
	}
	out := Rows{Columns: cols, Rows: make([][]any, 0, len(t.data))}
	for _, row := range t.data {
		if inOrder && len(row) == len(cols) {
			out.Rows = append(out.Rows, row)
			continue
		}
		r := make([]any, len(cols))
		for j, i := range order {
			if i >= 0 && i < len(row) {
				r[j] = row[i]
			}
		}
		out.Rows = append(out.Rows, r)
	}
	return out
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("want %v", d)
	}
	return nil
}

func stringToken(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", errors.New("want a key")
	}
	return s, nil
}

// readFeatureCollection reads a GeoJSON FeatureCollection of at most
// maxBytes bytes and maxRows features.
func readFeatureCollection(body io.Reader, hdr http.Header, maxRows int, maxBytes int64) ([]byte, error) {
	if tooLong(hdr, maxBytes) {
		return nil, &LimitError{Limit: "max_bytes", Value: maxBytes}
	}
	b, err := io.ReadAll(io.LimitReader(body, maxBytes+1))
	if err != nil {
		return nil, err // a transport failure: send sees it
	}
	if int64(len(b)) > maxBytes {
		return nil, &LimitError{Limit: "max_bytes", Value: maxBytes}
	}
	// Features decoded as empty structs: checked and counted, not kept.
	var fc struct {
		Type     string     `json:"type"`
		Features []struct{} `json:"features"`
	}
	if err := json.Unmarshal(b, &fc); err != nil || fc.Type != "FeatureCollection" || fc.Features == nil {
		return nil, errMalformed(opFetchGeoJSON, "GeoJSON FeatureCollection")
	}
	if len(fc.Features) > maxRows {
		return nil, &LimitError{Limit: "max_rows", Value: int64(maxRows)}
	}
	return b, nil
}
