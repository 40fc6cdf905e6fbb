package cartosim

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// oauthToken is an issued M2M OAuth access token.
type oauthToken struct {
	clientID  string
	expiresAt time.Time
}

// oauthRequest holds the client-credentials fields, from a form or JSON.
type oauthRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Audience     string `json:"audience"`
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": description})
}

// serveOAuth emulates POST https://auth.carto.com/oauth/token (an Auth0
// tenant), client-credentials grant only.
func (s *Sim) serveOAuth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	req, status, desc := readOAuthRequest(w, r)
	if status != 0 {
		oauthError(w, status, "invalid_request", desc)
		return
	}
	switch req.GrantType {
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: grant_type")
		return
	case "client_credentials":
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant type: "+req.GrantType)
		return
	}
	s.mu.Lock()
	secret, known := s.clients[req.ClientID]
	s.mu.Unlock()
	// Compare even for unknown clients so timing does not reveal which
	// client ids exist.
	ok := subtle.ConstantTimeCompare([]byte(secret), []byte(req.ClientSecret)) == 1
	if !known || !ok || req.ClientID == "" {
		oauthError(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	}
	if req.Audience != s.audience {
		oauthError(w, http.StatusForbidden, "access_denied", "Service not enabled within domain: "+req.Audience)
		return
	}
	now := s.now()
	tok := "sim-oauth-" + randomHex(24)
	s.mu.Lock()
	if len(s.oauth) >= 256 {
		// Sweep expired tokens now and then so long demo runs stay small.
		for k, t := range s.oauth {
			if !now.Before(t.expiresAt) {
				delete(s.oauth, k)
			}
		}
	}
	s.oauth[tok] = oauthToken{clientID: req.ClientID, expiresAt: now.Add(s.ttl)}
	s.stats.OAuthIssued++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(s.ttl / time.Second),
		"scope":        "",
	})
}

// readOAuthRequest decodes a JSON or form-encoded body. CARTO's guides post
// forms; its custom-backend sample and agent docs post JSON.
// A non-zero status means failure, described by the returned text.
func readOAuthRequest(w http.ResponseWriter, r *http.Request) (oauthRequest, int, string) {
	var req oauthRequest
	body, status, desc := readBody(w, r)
	if status != 0 {
		return req, status, desc
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if isJSONBody(mt, body) {
		if err := json.Unmarshal(body, &req); err != nil {
			return req, http.StatusBadRequest, "Malformed JSON body"
		}
		return req, 0, ""
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return req, http.StatusBadRequest, "Malformed form body"
	}
	req.GrantType = form.Get("grant_type")
	req.ClientID = form.Get("client_id")
	req.ClientSecret = form.Get("client_secret")
	req.Audience = form.Get("audience")
	return req, 0, ""
}

// readBody reads a request body of at most maxBody bytes. A non-zero
// status (413 or 400) means failure, described by the returned text.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, http.StatusRequestEntityTooLarge, "Request body too large"
		}
		return nil, http.StatusBadRequest, "Could not read the request body"
	}
	return body, 0, ""
}

// isJSONBody decides how to read a body: by its media type, or, when that
// is neither JSON nor a form, by whether it looks like a JSON object.
func isJSONBody(mediaType string, body []byte) bool {
	switch {
	case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
		return true
	case mediaType == "application/x-www-form-urlencoded":
		return false
	}
	b := bytes.TrimSpace(body)
	return len(b) > 0 && b[0] == '{'
}

// NewClient returns fresh credentials for an emulated M2M OAuth client, for
// running a Sim without configured ones.
func NewClient() (id, secret string) { return "sim-" + randomHex(4), randomHex(24) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// oauthClient resolves the OAuth token of a Tokens API request to its
// client id. It writes the 401 itself and returns ok=false on failure.
func (s *Sim) oauthClient(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw := bearerToken(r)
	unauthorized := func(desc string) (string, bool) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="carto"`)
		writeJSON(w, http.StatusUnauthorized, errorBody("Unauthorized", desc))
		return "", false
	}
	if raw == "" {
		return unauthorized("An OAuth access token is required")
	}
	now := s.now()
	s.mu.Lock()
	t, isOAuth := s.oauth[raw]
	_, isAPI := s.tokens[raw]
	s.mu.Unlock()
	switch {
	case isAPI:
		return unauthorized("The Tokens API requires an OAuth access token, not an API access token")
	case !isOAuth:
		return unauthorized("Invalid OAuth access token")
	case !now.Before(t.expiresAt):
		return unauthorized("The OAuth access token has expired")
	}
	return t.clientID, true
}
