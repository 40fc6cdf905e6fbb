package cartosim

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTokensLifecycle creates, lists, reads, patches and deletes a token,
// with each status and list shape the emulator can answer with.
func TestTokensLifecycle(t *testing.T) {
	tests := []struct {
		create, delete int
		wrapped        bool
	}{
		{0, 0, false},
		{201, 200, true},
		{200, 204, true},
		{201, 204, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("create%d_delete%d_wrapped%v", tc.create, tc.delete, tc.wrapped), func(t *testing.T) {
			e := newEnv(t, Config{CreateStatus: tc.create, DeleteStatus: tc.delete, ListWrapped: tc.wrapped})
			lc := &tokenLifecycle{env: e, oauth: e.oauth(), wrapped: tc.wrapped}
			if l := lc.list(t); len(l) != 0 {
				t.Fatalf("initial list: %v", l)
			}
			tok, exp, wantShape := lc.create(t, cmp.Or(tc.create, 200))

			// A second token without expiration omits expiration_date.
			tok2 := e.createToken(lc.oauth, tokenReq("carto_dw", "*", "sql"))
			l := lc.list(t)
			if len(l) != 2 {
				t.Fatalf("list: %v", l)
			}
			assertJSONEqual(t, "list[0]", l[0], wantShape)
			if _, has := l[1].(map[string]any)["expiration_date"]; has || l[1].(map[string]any)["token"] != tok2 {
				t.Errorf("list[1]: %v", l[1])
			}

			r := e.do("GET", "/v3/tokens/"+tok, nil, bearer(lc.oauth)...)
			if r.status != 200 {
				t.Fatalf("get: %d", r.status)
			}
			assertJSONEqual(t, "get", r.obj(t), wantShape)

			lc.patch(t, tok, exp, wantShape)
			lc.delete(t, tok, cmp.Or(tc.delete, 204))
			if l := lc.list(t); len(l) != 1 || l[0].(map[string]any)["token"] != tok2 {
				t.Errorf("list after delete: %v", l)
			}
			if info, ok := e.sim.Token(tok); !ok || !info.Deleted || info.ClientID != testClient {
				t.Errorf("Token() after delete: %+v %v", info, ok)
			}
		})
	}
}

// tokenLifecycle drives the Tokens API with one OAuth token.
type tokenLifecycle struct {
	*env
	oauth   string
	wrapped bool // lists are {"tokens": [...]}
}

// list lists the tokens, unwrapping the list if the emulator wraps it.
func (lc *tokenLifecycle) list(t *testing.T) []any {
	t.Helper()
	r := lc.do("GET", "/v3/tokens", nil, bearer(lc.oauth)...)
	if r.status != 200 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if !lc.wrapped {
		return r.arr(t)
	}
	arr, ok := r.obj(t)["tokens"].([]any)
	if !ok {
		t.Fatalf("wrapped list: %s", r.body)
	}
	return arr
}

// create creates a token with every field, expecting status, and returns it,
// its expiry and the shape every later answer about it must have.
func (lc *tokenLifecycle) create(t *testing.T, status int) (tok string, exp time.Time, wantShape map[string]any) {
	t.Helper()
	exp = lc.clock.Now().Add(48 * time.Hour)
	req := map[string]any{
		"grants":          []map[string]string{{"connection_name": "carto_dw", "source": bostonSQL}},
		"referers":        []string{"https://app.example.com", "http://localhost:5173"},
		"allowed_apis":    []string{"maps", "sql"},
		"expiration_date": exp.Format(time.RFC3339),
		"name":            "boston-viewer",
		"unknown_field":   true,
	}
	r := lc.do("POST", "/v3/tokens", req, bearer(lc.oauth)...)
	if r.status != status {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := r.obj(t)
	tok = created["token"].(string)
	wantShape = map[string]any{
		"token":           tok,
		"name":            "boston-viewer",
		"grants":          []any{map[string]any{"connection_name": "carto_dw", "source": bostonSQL}},
		"referers":        []any{"https://app.example.com", "http://localhost:5173"},
		"allowed_apis":    []any{"maps", "sql"},
		"expiration_date": exp.Format(time.RFC3339),
		"created_at":      lc.clock.Now().Format(time.RFC3339),
	}
	assertJSONEqual(t, "create", created, wantShape)
	return tok, exp, wantShape
}

// patch changes the grants, APIs and name of tok, and updates wantShape.
func (lc *tokenLifecycle) patch(t *testing.T, tok string, exp time.Time, wantShape map[string]any) {
	t.Helper()
	patch := map[string]any{
		"grants":       []map[string]string{{"connection_name": "carto_dw", "source": "*"}},
		"allowed_apis": []string{"sql"},
		"name":         "renamed",
	}
	r := lc.do("PATCH", "/v3/tokens/"+tok, patch, bearer(lc.oauth)...)
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	wantShape["grants"] = []any{map[string]any{"connection_name": "carto_dw", "source": "*"}}
	wantShape["allowed_apis"] = []any{"sql"}
	wantShape["name"] = "renamed"
	assertJSONEqual(t, "patch", r.obj(t), wantShape)
	if info, _ := lc.sim.Token(tok); info.Name != "renamed" || len(info.Referers) != 2 || !info.ExpiresAt.Equal(exp) {
		t.Errorf("Token() after patch: %+v", info)
	}
}

// delete deletes tok, expecting status, after which tok is not found.
func (lc *tokenLifecycle) delete(t *testing.T, tok string, status int) {
	t.Helper()
	r := lc.do("DELETE", "/v3/tokens/"+tok, nil, bearer(lc.oauth)...)
	if r.status != status {
		t.Fatalf("delete: %d", r.status)
	}
	if status == 204 && len(r.body) != 0 {
		t.Errorf("204 with body %q", r.body)
	}
	if status == 200 && string(r.body) != "{}" {
		t.Errorf("200 delete body %q", r.body)
	}
	for _, m := range []string{"GET", "DELETE", "PATCH"} {
		r := lc.do(m, "/v3/tokens/"+tok, map[string]any{"name": "x"}, bearer(lc.oauth)...)
		if r.status != 404 || r.obj(t)["error"] != "Not found" {
			t.Errorf("%s deleted token: %d %s", m, r.status, r.body)
		}
	}
}

func TestTokensAuth(t *testing.T) {
	e := newEnv(t, Config{})
	oauth := e.oauth()
	apiTok := e.createToken(oauth, tokenReq("c", "*", "sql"))
	tests := []struct {
		name    string
		path    string
		headers []string
		status  int
	}{
		{"no token", "/v3/tokens", nil, 401},
		{"unknown token", "/v3/tokens", bearer("sim-oauth-nope"), 401},
		{"api token", "/v3/tokens", bearer(apiTok), 401},
		{"api token in query", "/v3/tokens?access_token=" + apiTok, nil, 401},
		{"basic auth", "/v3/tokens", []string{"Authorization", "Basic eDp5"}, 401},
		{"bearer", "/v3/tokens", bearer(oauth), 200},
		{"lowercase bearer", "/v3/tokens", []string{"Authorization", "bearer " + oauth}, 200},
		{"access_token query parameter", "/v3/tokens?access_token=" + oauth, nil, 200},
	}
	for _, tc := range tests {
		r := e.do("GET", tc.path, nil, tc.headers...)
		if r.status != tc.status {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			continue
		}
		if tc.status == 401 {
			if m := r.obj(t); m["error"] != "Unauthorized" || m["description"] == "" {
				t.Errorf("%s: body %s", tc.name, r.body)
			}
		}
	}
	// Creating with the access_token query parameter works too.
	r := e.do("POST", "/v3/tokens?access_token="+oauth, tokenReq("c", "*", "sql"))
	if r.status != 200 {
		t.Errorf("create via access_token: %d %s", r.status, r.body)
	}
}

func TestTokenOwnership(t *testing.T) {
	e := newEnv(t, Config{})
	e.sim.addClient("client-2", "secret-2")
	mine, theirs := e.oauth(), e.oauthFor("client-2", "secret-2")
	tok := e.createToken(mine, tokenReq("c", "*", "sql"))
	theirTok := e.createToken(theirs, tokenReq("c", "*", "sql"))

	r := e.do("GET", "/v3/tokens", nil, bearer(theirs)...)
	if l := r.arr(t); len(l) != 1 || l[0].(map[string]any)["token"] != theirTok {
		t.Errorf("other client's list: %s", r.body)
	}
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		if r := e.do(m, "/v3/tokens/"+tok, map[string]any{"name": "stolen"}, bearer(theirs)...); r.status != 404 {
			t.Errorf("%s another client's token: %d", m, r.status)
		}
	}
	if info, _ := e.sim.Token(tok); info.Deleted || info.Name != "" {
		t.Errorf("token changed by another client: %+v", info)
	}
}

func TestQuota(t *testing.T) {
	for _, status := range []int{0, 403} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := newEnv(t, Config{MaxLiveTokens: 2, QuotaStatus: status})
			e.sim.addClient("client-2", "secret-2")
			oauth := e.oauth()
			want := status
			if want == 0 {
				want = 429
			}
			exp := map[string]any{
				"grants":          []map[string]string{{"connection_name": "c", "source": "*"}},
				"expiration_date": e.clock.Now().Add(time.Hour).Format(time.RFC3339),
			}
			expiring := e.createToken(oauth, exp)
			keep := e.createToken(oauth, tokenReq("c", "*", "sql"))
			r := e.do("POST", "/v3/tokens", tokenReq("c", "*", "sql"), bearer(oauth)...)
			if r.status != want || r.obj(t)["error"] != "Quota exceeded" || r.obj(t)["description"] == nil {
				t.Fatalf("over quota: %d %s", r.status, r.body)
			}
			// The quota is per client.
			e.createToken(e.oauthFor("client-2", "secret-2"), tokenReq("c", "*", "sql"))
			// Deleting frees a slot.
			e.do("DELETE", "/v3/tokens/"+keep, nil, bearer(oauth)...)
			e.createToken(oauth, tokenReq("c", "*", "sql"))
			if r := e.do("POST", "/v3/tokens", tokenReq("c", "*", "sql"), bearer(oauth)...); r.status != want {
				t.Fatalf("full again: %d", r.status)
			}
			// So does expiry.
			e.clock.Advance(time.Hour)
			if _, ok := e.sim.Token(expiring); !ok {
				t.Fatal("expired token forgotten")
			}
			e.createToken(oauth, tokenReq("c", "*", "sql"))
			if st := e.sim.Stats(); st.LiveTokens != 3 || st.TokensCreated != 5 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

func TestTokenFormat(t *testing.T) {
	e := newEnv(t, Config{})
	oauth := e.oauth()
	seen := map[string]bool{}
	for range 50 {
		tok := e.createToken(oauth, tokenReq("c", "*", "sql"))
		if seen[tok] {
			t.Fatalf("duplicate token %s", tok)
		}
		seen[tok] = true
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("not a compact JWT: %s", tok)
		}
		dec := base64.RawURLEncoding
		h, _ := dec.DecodeString(parts[0])
		p, _ := dec.DecodeString(parts[1])
		if string(h) != `{"alg":"HS256","typ":"JWT"}` {
			t.Errorf("header %s", h)
		}
		var claims map[string]string
		if err := json.Unmarshal(p, &claims); err != nil || claims["a"] != "ac_sim" || len(claims["jti"]) != 8 || len(claims) != 2 {
			t.Errorf("payload %s", p)
		}
		mac := hmac.New(sha256.New, e.sim.key)
		mac.Write([]byte(parts[0] + "." + parts[1]))
		if dec.EncodeToString(mac.Sum(nil)) != parts[2] {
			t.Errorf("bad signature on %s", tok)
		}
	}
}
