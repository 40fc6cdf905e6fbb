package cartosim

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// TokenInfo describes an API access token, for tests.
type TokenInfo struct {
	Token       string
	Name        string
	Grants      []Grant
	AllowedAPIs []string
	Referers    []string
	ExpiresAt   time.Time // zero = never
	CreatedAt   time.Time
	Deleted     bool
	ClientID    string // the OAuth client that created it
}

// Grant gives a token access to a source through a connection.
type Grant struct {
	ConnectionName string `json:"connection_name"`
	Source         string `json:"source"`
}

// apiToken is a stored API access token; seq orders listings by creation.
type apiToken struct {
	info TokenInfo
	seq  uint64
}

func (t *apiToken) expired(now time.Time) bool {
	return !t.info.ExpiresAt.IsZero() && !now.Before(t.info.ExpiresAt)
}

func (t *apiToken) live(now time.Time) bool { return !t.info.Deleted && !t.expired(now) }

func (ti TokenInfo) clone() TokenInfo {
	ti.Grants = slices.Clone(ti.Grants)
	ti.AllowedAPIs = slices.Clone(ti.AllowedAPIs)
	ti.Referers = slices.Clone(ti.Referers)
	return ti
}

// Token looks up an API access token, deleted ones included.
func (s *Sim) Token(token string) (TokenInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[token]
	if !ok {
		return TokenInfo{}, false
	}
	return t.info.clone(), true
}

// knownAPIs are the values CARTO documents for allowed_apis.
func knownAPIs() []string { return []string{"sql", "maps", "imports", "lds"} }

// wireToken is the JSON shape of a token in Tokens API responses. CARTO's
// exact response is not public; this echoes the request fields, which is
// what its CLI output suggests.
type wireToken struct {
	Token          string   `json:"token"`
	Name           string   `json:"name"`
	Grants         []Grant  `json:"grants"`
	Referers       []string `json:"referers"`
	AllowedAPIs    []string `json:"allowed_apis"`
	ExpirationDate string   `json:"expiration_date,omitempty"`
	CreatedAt      string   `json:"created_at"`
}

func toWire(ti TokenInfo) wireToken {
	w := wireToken{
		Token:       ti.Token,
		Name:        ti.Name,
		Grants:      append([]Grant{}, ti.Grants...),
		Referers:    append([]string{}, ti.Referers...),
		AllowedAPIs: append([]string{}, ti.AllowedAPIs...),
		CreatedAt:   formatTime(ti.CreatedAt),
	}
	if !ti.ExpiresAt.IsZero() {
		w.ExpirationDate = formatTime(ti.ExpiresAt)
	}
	return w
}

// debugToken is the /_sim/tokens shape: the wire shape plus bookkeeping.
type debugToken struct {
	wireToken
	ClientID string `json:"client_id"`
	Deleted  bool   `json:"deleted"`
	Expired  bool   `json:"expired"`
}

func (s *Sim) debugTokens() []debugToken {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []debugToken{}
	for _, t := range s.sortedTokens(func(*apiToken) bool { return true }) {
		out = append(out, debugToken{toWire(t.info), t.info.ClientID, t.info.Deleted, t.expired(now)})
	}
	return out
}

// sortedTokens returns the tokens that keep reports, oldest first. The
// caller holds s.mu.
func (s *Sim) sortedTokens(keep func(*apiToken) bool) []*apiToken {
	var ts []*apiToken
	for _, t := range s.tokens {
		if keep(t) {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(a, b *apiToken) int { return cmp.Compare(a.seq, b.seq) })
	return ts
}

// serveTokens emulates /v3/tokens and /v3/tokens/{token}. Every call needs
// an OAuth access token; the path id is the token string itself.
func (s *Sim) serveTokens(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v3/tokens"), "/")
	allow := "GET, POST"
	if id != "" {
		if strings.Contains(id, "/") {
			notFound(w, r)
			return
		}
		allow = "GET, PATCH, DELETE"
	}
	if !slices.Contains(strings.Split(allow, ", "), r.Method) {
		methodNotAllowed(w, allow)
		return
	}
	client, ok := s.oauthClient(w, r)
	if !ok {
		return
	}
	var herr *httpError
	switch {
	case id == "" && r.Method == http.MethodGet:
		s.listTokens(w, client)
	case id == "":
		herr = s.createToken(w, r, client)
	case r.Method == http.MethodGet:
		herr = s.getToken(w, client, id)
	case r.Method == http.MethodPatch:
		herr = s.patchToken(w, r, client, id)
	default:
		herr = s.deleteToken(w, client, id)
	}
	if herr != nil {
		herr.write(w)
	}
}

func (s *Sim) listTokens(w http.ResponseWriter, client string) {
	s.mu.Lock()
	list := []wireToken{}
	for _, t := range s.sortedTokens(func(t *apiToken) bool { return t.info.ClientID == client && !t.info.Deleted }) {
		list = append(list, toWire(t.info))
	}
	s.stats.TokensListed++
	s.mu.Unlock()
	if s.listWrapped {
		writeJSON(w, http.StatusOK, map[string]any{"tokens": list})
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// owned returns the client's undeleted token id, or nil. Other clients'
// tokens answer 404 like unknown ones, so their existence does not leak.
// The caller holds s.mu.
func (s *Sim) owned(client, id string) *apiToken {
	t := s.tokens[id]
	if t == nil || t.info.Deleted || t.info.ClientID != client {
		return nil
	}
	return t
}

func tokenNotFound() *httpError {
	return tokensError(http.StatusNotFound, "Not found", "Token not found")
}

func (s *Sim) getToken(w http.ResponseWriter, client, id string) *httpError {
	s.mu.Lock()
	t := s.owned(client, id)
	if t == nil {
		s.mu.Unlock()
		return tokenNotFound()
	}
	s.stats.TokensRead++
	wt := toWire(t.info)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, wt)
	return nil
}

func (s *Sim) deleteToken(w http.ResponseWriter, client, id string) *httpError {
	s.mu.Lock()
	t := s.owned(client, id)
	if t == nil {
		s.mu.Unlock()
		return tokenNotFound()
	}
	// Keep the record so data requests with it answer 401, not "unknown".
	t.info.Deleted = true
	s.stats.TokensDeleted++
	s.mu.Unlock()
	if s.deleteStatus == http.StatusNoContent {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Sim) createToken(w http.ResponseWriter, r *http.Request, client string) *httpError {
	m, herr := readJSONObject(w, r)
	if herr != nil {
		return herr
	}
	now := s.now()
	f, herr := parseTokenFields(m, now)
	if herr != nil {
		return herr
	}
	if f.grants == nil {
		return tokensError(http.StatusBadRequest, "Invalid grants", "grants must contain at least one grant")
	}
	ti := TokenInfo{
		Grants:    *f.grants,
		CreatedAt: now,
		ClientID:  client,
		// CARTO's default for an omitted allowed_apis is not public. The
		// emulator stores it empty, so every data API refuses the token:
		// callers must list the APIs they need.
		AllowedAPIs: []string{},
		Referers:    []string{},
	}
	if f.apis != nil {
		ti.AllowedAPIs = *f.apis
	}
	if f.referers != nil {
		ti.Referers = *f.referers
	}
	if f.name != nil {
		ti.Name = *f.name
	}
	if f.expiration != nil {
		ti.ExpiresAt = *f.expiration
	}
	s.mu.Lock()
	live := 0
	for _, t := range s.tokens {
		if t.info.ClientID == client && t.live(now) {
			live++
		}
	}
	if live >= s.maxLive {
		s.mu.Unlock()
		return tokensError(s.quotaStatus, "Quota exceeded",
			fmt.Sprintf("This client already has %d live API access tokens, the maximum; delete some first", live))
	}
	ti.Token = s.mintToken()
	s.seq++
	s.tokens[ti.Token] = &apiToken{info: ti.clone(), seq: s.seq}
	s.stats.TokensCreated++
	s.mu.Unlock()
	writeJSON(w, s.createStatus, toWire(ti))
	return nil
}

func (s *Sim) patchToken(w http.ResponseWriter, r *http.Request, client, id string) *httpError {
	m, herr := readJSONObject(w, r)
	if herr != nil {
		return herr
	}
	if _, ok := m["expiration_date"]; ok {
		return tokensError(http.StatusBadRequest, "Invalid expiration_date",
			"expiration_date can only be set when the token is created; create a new token instead")
	}
	f, herr := parseTokenFields(m, s.now())
	if herr != nil {
		return herr
	}
	s.mu.Lock()
	t := s.owned(client, id)
	if t == nil {
		s.mu.Unlock()
		return tokenNotFound()
	}
	if f.grants != nil {
		t.info.Grants = *f.grants
	}
	if f.apis != nil {
		t.info.AllowedAPIs = *f.apis
	}
	if f.referers != nil {
		t.info.Referers = *f.referers
	}
	if f.name != nil {
		t.info.Name = *f.name
	}
	wt := toWire(t.info)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, wt)
	return nil
}

// mintToken returns a new unique API access token: a compact HS256 JWT
// shaped like CARTO's, {"a":"ac_...","jti":"<8 hex>"}. The caller holds s.mu.
func (s *Sim) mintToken() string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	for {
		payload := enc.EncodeToString([]byte(`{"a":"ac_sim","jti":"` + randomHex(4) + `"}`))
		mac := hmac.New(sha256.New, s.key)
		mac.Write([]byte(header + "." + payload))
		tok := header + "." + payload + "." + enc.EncodeToString(mac.Sum(nil))
		if _, dup := s.tokens[tok]; !dup { // 32-bit jti: collisions are possible
			return tok
		}
	}
}
