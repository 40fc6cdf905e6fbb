package cartogateway

import (
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

// FuzzReadRequest feeds readRequest any query string and POST body. It must
// not panic; a name given twice in the query string must be refused (the
// oracle is url.ParseQuery's count); and what it accepts must survive being
// sent on: the rewritten request reads back as the same query parameters.
func FuzzReadRequest(f *testing.F) {
	q := "SELECT * FROM t WHERE city = @groupcity"
	f.Add(url.Values{"q": {q}, "queryParameters": {`{"groupcity":"BOSTON"}`}, "v": {"3.4"}}.Encode(), []byte(nil), false)
	f.Add("", []byte(`{"q":"`+q+`","queryParameters":{"groupcity":"BOSTON","n":1.5e3}}`), true)
	f.Add("q=a&q=b", []byte(nil), false)
	f.Add("access_token=x", []byte(`{"queryParameters":"{\"a\":[1,{}]}"}`), true)
	f.Add("", []byte(`{"q":"x","q":"y"}`), true)
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte, post bool) {
		method := http.MethodGet
		if post {
			method = http.MethodPost
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: "/v3/maps/c/query", RawQuery: rawQuery}, Header: http.Header{}}
		req, err := readRequest(r, body)
		if err != nil {
			return
		}
		if vals, perr := url.ParseQuery(rawQuery); perr == nil {
			for k, vs := range vals {
				if len(vs) > 1 {
					t.Fatalf("parameter %q given %d times was accepted", k, len(vs))
				}
			}
		}
		if req.params == nil {
			return // no parameters, or positional ones (passed on as they came)
		}
		query, upBody, err := req.rewritten("SELECT 1", req.params)
		if err != nil {
			t.Fatalf("accepted parameters cannot be encoded: %v", err)
		}
		back := &http.Request{Method: method, URL: &url.URL{RawQuery: query.Encode()}, Header: http.Header{}}
		again, err := readRequest(back, upBody)
		if err != nil {
			t.Fatalf("the rewritten request is refused: %v (query %q, body %s)", err, query.Encode(), upBody)
		}
		if again.q != "SELECT 1" || !reflect.DeepEqual(again.params, req.params) {
			t.Fatalf("the rewritten request reads back as q=%q params=%v, want %v", again.q, again.params, req.params)
		}
		if post && !bytes.Contains(upBody, []byte(`"q":"SELECT 1"`)) {
			t.Fatalf("the rewritten body lacks the grant: %s", upBody)
		}
	})
}
