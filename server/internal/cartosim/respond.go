package cartosim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// writeJSON writes v as a JSON response. HTML escaping is off so SQL text
// such as "a <> b" stays readable.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := marshal(v)
	if err != nil {
		http.Error(w, `{"error":"Internal Server Error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// marshal encodes v as compact JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// errorBody is the {error, description} shape of the Tokens API, which
// CARTO's sample backend reads.
func errorBody(err, description string) map[string]any {
	return map[string]any{"error": err, "description": description}
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]any{
		"error":       "Not found",
		"description": fmt.Sprintf("No route for %s %s", r.Method, r.URL.Path),
		"status":      http.StatusNotFound,
	})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, map[string]any{
		"error":  "Method not allowed",
		"status": http.StatusMethodNotAllowed,
	})
}

// bearerToken returns the credential of a request: the Authorization
// Bearer token, else the access_token query parameter.
func bearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	return queryValues(r.URL.RawQuery).Get("access_token")
}

// formatTime renders timestamps on the wire: RFC 3339, UTC, seconds.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// httpError is a failure answered as JSON with a status.
type httpError struct {
	status int
	body   any
}

func (e *httpError) write(w http.ResponseWriter) { writeJSON(w, e.status, e.body) }

// tokensError builds a Tokens API error, shaped {error, description}.
func tokensError(status int, short, description string) *httpError {
	return &httpError{status: status, body: errorBody(short, description)}
}
