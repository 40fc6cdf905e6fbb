package cartogateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// request is a query request's parameters, as the gateway reads them: from
// the query string of a GET, or the JSON body of a POST (what deck.gl sends
// when the URL would pass 8 KiB). Each parameter appears once: a name given
// twice, in one place or in the URL and the body, is refused, so that what
// the gateway checks is what CARTO would read.
type request struct {
	post  bool
	query url.Values                 // GET: every parameter; POST: the URL's (none but access_token)
	body  map[string]json.RawMessage // POST: the body's parameters
	q     string
	// params is queryParameters decoded (numbers kept as json.Number);
	// nil when absent. hasParams tells absent from empty.
	params    map[string]any
	hasParams bool
	token     string // access_token given as a parameter
	raw       []byte // POST: the body as it came
}

// errInvalid is a request the gateway cannot read: 400.
var errInvalid = errors.New("invalid request")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errInvalid, fmt.Sprintf(format, a...))
}

// readRequest reads r's parameters, from its query string and, for a POST,
// its body (read already, by readBody).
func readRequest(r *http.Request, body []byte) (*request, error) {
	query, err := strictQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	req := &request{post: r.Method == http.MethodPost, query: query, raw: body}
	req.q = query.Get("q")
	qp, hasQP := query.Get("queryParameters"), query.Has("queryParameters")
	if req.post {
		if req.body, err = decodeBody(body); err != nil {
			return nil, err
		}
		for k := range req.body {
			if query.Has(k) {
				return nil, invalid("parameter %s is given both in the URL and in the body", k)
			}
		}
		if raw, ok := req.body["q"]; ok {
			if err := json.Unmarshal(raw, &req.q); err != nil {
				return nil, invalid("q must be a string")
			}
		}
		if raw, ok := req.body["queryParameters"]; ok {
			// deck.gl posts queryParameters as an object; a JSON string
			// holding one, as a GET carries it, is accepted too.
			qp, hasQP = string(raw), true
			var s string
			if json.Unmarshal(raw, &s) == nil {
				qp = s
			}
		}
	}
	req.token = query.Get("access_token")
	if hasQP {
		if req.params, err = decodeParams(qp); err != nil {
			return nil, err
		}
		req.hasParams = true
	}
	return req, nil
}

// strictQuery parses a query string, refusing a name given twice and
// anything url.ParseQuery would silently drop.
func strictQuery(raw string) (url.Values, error) {
	v := url.Values{}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, val, _ := strings.Cut(part, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(val)
		if err1 != nil || err2 != nil {
			return nil, invalid("the query string is not URL-encoded correctly")
		}
		if v.Has(key) {
			return nil, invalid("parameter %s is given twice", key)
		}
		v.Set(key, value)
	}
	return v, nil
}

// readBody reads a POST's body, which must be JSON; nil for a GET. The
// server bounds it (transport.MaxBodyBytes): past that, the error is an
// *http.MaxBytesError.
func readBody(r *http.Request) ([]byte, error) {
	if r.Method != http.MethodPost {
		return nil, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/plain") {
			return nil, invalid("the body must be a JSON object (Content-Type application/json)")
		}
	}
	return io.ReadAll(r.Body)
}

// decodeBody decodes a POST's JSON object, refusing a key given twice.
func decodeBody(b []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	return strictObject(b, "the body")
}

// decodeParams decodes queryParameters: a JSON object whose names are
// unique. CARTO also takes an array (positional parameters); such a query
// names no parameter, so it is passed on as it is, undecoded.
func decodeParams(text string) (map[string]any, error) {
	t := strings.TrimSpace(text)
	if strings.HasPrefix(t, "[") {
		if !json.Valid([]byte(t)) {
			return nil, invalid("queryParameters is not valid JSON")
		}
		return nil, nil
	}
	obj, err := strictObject([]byte(t), "queryParameters")
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(obj))
	for k, raw := range obj {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, invalid("queryParameters.%s is not valid JSON", k)
		}
		out[k] = v
	}
	return out, nil
}

// strictObject decodes a JSON object into its members, refusing a name
// given twice: JSON parsers differ on which of two wins, and the gateway
// must check the value CARTO will use.
func strictObject(b []byte, what string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, invalid("%s is not a JSON object", what)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("%s is not valid JSON", what)
		}
		key := tok.(string) // object keys are strings once the object parses
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid("%s is not valid JSON", what)
		}
		if _, dup := out[key]; dup {
			return nil, invalid("%s names %s twice", what, key)
		}
		out[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalid("%s is not valid JSON", what)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("%s has data after its end", what)
	}
	return out, nil
}

// rewritten returns the parameters to send CARTO once the query is bound:
// the literal grant as q, the parameters left (or none), and no
// access_token (the token goes in the Authorization header).
func (req *request) rewritten(q string, params map[string]any) (query url.Values, body []byte, err error) {
	var qp []byte
	if params != nil {
		if qp, err = json.Marshal(params); err != nil {
			return nil, nil, err
		}
	}
	if !req.post {
		query = url.Values{}
		for k, vs := range req.query {
			query[k] = slices.Clone(vs)
		}
		query.Del("access_token")
		query.Set("q", q)
		query.Del("queryParameters")
		if qp != nil {
			query.Set("queryParameters", string(qp))
		}
		return query, nil, nil
	}
	// The URL's parameters move into the body, beside the body's own.
	fields := make(map[string]json.RawMessage, len(req.body)+len(req.query)+1)
	for k, vs := range req.query {
		if fields[k], err = json.Marshal(vs[0]); err != nil {
			return nil, nil, err
		}
	}
	for k, v := range req.body {
		fields[k] = v
	}
	delete(fields, "access_token")
	if fields["q"], err = json.Marshal(q); err != nil {
		return nil, nil, err
	}
	delete(fields, "queryParameters")
	if qp != nil {
		fields["queryParameters"] = qp
	}
	if body, err = json.Marshal(fields); err != nil {
		return nil, nil, err
	}
	return url.Values{}, body, nil
}
