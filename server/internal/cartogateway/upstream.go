package cartogateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// answer is an upstream answer held whole: an instantiation is small (a
// schema and a few URLs).
type answer struct {
	status int
	header http.Header // the headers passed on (passedHeaders)
	body   []byte
}

// upstreamCall is a rewritten request, as it goes to CARTO.
type upstreamCall struct {
	route           route
	token           string
	query           url.Values
	body            []byte // POST only
	post            bool
	origin, referer string // the browser's: CARTO checks them against the token's referers
}

func (g *Gateway) endpoint(rt route) string {
	return g.upstream.String() + "/v3/" + rt.api + "/" + url.PathEscape(rt.conn) + "/query"
}

// passedHeaders are the answer's headers passed on to the caller. CORS is
// the broker's own; lengths and encodings are the server's.
var passedHeaders = []string{"Content-Type", "Cache-Control", "Etag", "Last-Modified", "Expires", "Retry-After", "Content-Disposition"}

// send makes the upstream request of a rewritten call.
func (g *Gateway) send(ctx context.Context, up upstreamCall) (*http.Response, error) {
	u := g.endpoint(up.route)
	if enc := up.query.Encode(); enc != "" {
		u += "?" + enc
	}
	method, body := http.MethodGet, io.Reader(nil)
	if up.post {
		method, body = http.MethodPost, bytes.NewReader(up.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if up.post {
		req.Header.Set("Content-Type", "application/json")
	}
	setHeaders(req, up.token, up.origin, up.referer)
	return g.do(req)
}

func setHeaders(req *http.Request, token, origin, referer string) {
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tokenbroker-carto-gateway")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if referer != "" {
		req.Header.Set("Referer", referer)
	}
}

// do sends req. Its error never holds the URL, which may carry a token
// (url.Error's text quotes it).
func (g *Gateway) do(req *http.Request) (*http.Response, error) {
	resp, err := g.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("CARTO %s: %w", req.URL.Path, err)
	}
	return resp, nil
}

// fetch makes a rewritten call and reads its answer whole, for the cache
// and the callers sharing it.
func (g *Gateway) fetch(ctx context.Context, up upstreamCall) (*answer, error) {
	resp, err := g.send(ctx, up)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("read CARTO's answer: %w", err)
	}
	if len(body) > maxAnswer {
		return nil, fmt.Errorf("CARTO's instantiation answer is larger than %d bytes", maxAnswer)
	}
	return &answer{status: resp.StatusCode, header: passed(resp.Header), body: body}, nil
}

// stream makes a rewritten call and streams its answer to w.
func (g *Gateway) stream(w http.ResponseWriter, ctx context.Context, up upstreamCall) error {
	resp, err := g.send(ctx, up)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	copyAnswer(w, resp)
	return nil
}

// pass sends the request as it came (method, query string, body), with
// only the token moved to the Authorization header, and streams the
// answer: CARTO judges it against the token's grants.
func (g *Gateway) pass(w http.ResponseWriter, r *http.Request, rt route, token string, in *request) error {
	u := g.endpoint(rt)
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	var body io.Reader
	if r.Method == http.MethodPost {
		body = bytes.NewReader(in.raw) // readRequest read it
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u, body)
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && body != nil {
		req.Header.Set("Content-Type", ct)
	}
	setHeaders(req, token, r.Header.Get("Origin"), r.Header.Get("Referer"))
	resp, err := g.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	copyAnswer(w, resp)
	return nil
}

func passed(h http.Header) http.Header {
	out := http.Header{}
	for _, k := range passedHeaders {
		if v := h.Values(k); len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

// copyAnswer streams CARTO's answer: status, the headers that matter, body.
func copyAnswer(w http.ResponseWriter, resp *http.Response) {
	for k, v := range passed(resp.Header) {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	// A copy that breaks off (the caller left, CARTO stopped) can only be
	// cut short: the status is sent.
	_, _ = io.Copy(w, resp.Body)
}

func writeAnswer(w http.ResponseWriter, a *answer) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// writeError writes an error in CARTO's shape, which deck.gl and CARTO's
// clients read: {"error": message, "status": code}.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": msg, "status": status})
}
