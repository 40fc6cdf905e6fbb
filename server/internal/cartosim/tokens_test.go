package cartosim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

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
			oauth := e.oauth()
			list := func() []any {
				t.Helper()
				r := e.do("GET", "/v3/tokens", nil, bearer(oauth)...)
				if r.status != 200 {
					t.Fatalf("list: %d %s", r.status, r.body)
				}
				if !tc.wrapped {
					return r.arr(t)
				}
				arr, ok := r.obj(t)["tokens"].([]any)
				if !ok {
					t.Fatalf("wrapped list: %s", r.body)
				}
				return arr
			}
			if l := list(); len(l) != 0 {
				t.Fatalf("initial list: %v", l)
			}

			exp := e.clock.Now().Add(48 * time.Hour)
			req := map[string]any{
				"grants":          []map[string]string{{"connection_name": "carto_dw", "source": bostonSQL}},
				"referers":        []string{"https://app.example.com", "http://localhost:5173"},
				"allowed_apis":    []string{"maps", "sql"},
				"expiration_date": exp.Format(time.RFC3339),
				"name":            "boston-viewer",
				"unknown_field":   true,
			}
			r := e.do("POST", "/v3/tokens", req, bearer(oauth)...)
			wantCreate := tc.create
			if wantCreate == 0 {
				wantCreate = 200
			}
			if r.status != wantCreate {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			created := r.obj(t)
			tok := created["token"].(string)
			wantShape := map[string]any{
				"token":           tok,
				"name":            "boston-viewer",
				"grants":          []any{map[string]any{"connection_name": "carto_dw", "source": bostonSQL}},
				"referers":        []any{"https://app.example.com", "http://localhost:5173"},
				"allowed_apis":    []any{"maps", "sql"},
				"expiration_date": exp.Format(time.RFC3339),
				"created_at":      e.clock.Now().Format(time.RFC3339),
			}
			assertJSONEqual(t, "create", created, wantShape)

			// A second token without expiration omits expiration_date.
			tok2 := e.createToken(oauth, tokenReq("carto_dw", "*", "sql"))
			l := list()
			if len(l) != 2 {
				t.Fatalf("list: %v", l)
			}
			assertJSONEqual(t, "list[0]", l[0], wantShape)
			if _, has := l[1].(map[string]any)["expiration_date"]; has || l[1].(map[string]any)["token"] != tok2 {
				t.Errorf("list[1]: %v", l[1])
			}

			r = e.do("GET", "/v3/tokens/"+tok, nil, bearer(oauth)...)
			if r.status != 200 {
				t.Fatalf("get: %d", r.status)
			}
			assertJSONEqual(t, "get", r.obj(t), wantShape)

			patch := map[string]any{
				"grants":       []map[string]string{{"connection_name": "carto_dw", "source": "*"}},
				"allowed_apis": []string{"sql"},
				"name":         "renamed",
			}
			r = e.do("PATCH", "/v3/tokens/"+tok, patch, bearer(oauth)...)
			if r.status != 200 {
				t.Fatalf("patch: %d %s", r.status, r.body)
			}
			wantShape["grants"] = []any{map[string]any{"connection_name": "carto_dw", "source": "*"}}
			wantShape["allowed_apis"] = []any{"sql"}
			wantShape["name"] = "renamed"
			assertJSONEqual(t, "patch", r.obj(t), wantShape)
			if info, _ := e.sim.Token(tok); info.Name != "renamed" || len(info.Referers) != 2 || !info.ExpiresAt.Equal(exp) {
				t.Errorf("Token() after patch: %+v", info)
			}

			r = e.do("DELETE", "/v3/tokens/"+tok, nil, bearer(oauth)...)
			wantDelete := tc.delete
			if wantDelete == 0 {
				wantDelete = 204
			}
			if r.status != wantDelete {
				t.Fatalf("delete: %d", r.status)
			}
			if wantDelete == 204 && len(r.body) != 0 {
				t.Errorf("204 with body %q", r.body)
			}
			if wantDelete == 200 && string(r.body) != "{}" {
				t.Errorf("200 delete body %q", r.body)
			}
			for _, m := range []string{"GET", "DELETE", "PATCH"} {
				r := e.do(m, "/v3/tokens/"+tok, map[string]any{"name": "x"}, bearer(oauth)...)
				if r.status != 404 || r.obj(t)["error"] != "Not found" {
					t.Errorf("%s deleted token: %d %s", m, r.status, r.body)
				}
			}
			if l := list(); len(l) != 1 || l[0].(map[string]any)["token"] != tok2 {
				t.Errorf("list after delete: %v", l)
			}
			if info, ok := e.sim.Token(tok); !ok || !info.Deleted || info.ClientID != testClient {
				t.Errorf("Token() after delete: %+v %v", info, ok)
			}
		})
	}
}

// assertJSONEqual compares a decoded JSON value with want by re-encoding.
func assertJSONEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func TestTokenValidation(t *testing.T) {
	past := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC).Format(time.RFC3339)
	future := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
	grants := []map[string]string{{"connection_name": "c", "source": "*"}}
	tests := []struct {
		name   string
		body   any
		status int
		errSub string
	}{
		{"ok minimal", map[string]any{"grants": grants}, 200, ""},
		{"ok future expiry", map[string]any{"grants": grants, "expiration_date": future}, 200, ""},
		{"ok null expiry", map[string]any{"grants": grants, "expiration_date": nil}, 200, ""},
		{"ok origin with port", map[string]any{"grants": grants, "referers": []string{"http://localhost:8080"}}, 200, ""},
		{"no grants", map[string]any{"allowed_apis": []string{"sql"}}, 400, "grants"},
		{"empty grants", map[string]any{"grants": []any{}}, 400, "grants"},
		{"grant without source", map[string]any{"grants": []map[string]string{{"connection_name": "c"}}}, 400, "grants"},
		{"grant without connection", map[string]any{"grants": []map[string]string{{"source": "*"}}}, 400, "grants"},
		{"grants not array", map[string]any{"grants": "x"}, 400, "grants"},
		{"unknown api", map[string]any{"grants": grants, "allowed_apis": []string{"sql", "tiles"}}, 400, "allowed_apis"},
		{"referer trailing slash", map[string]any{"grants": grants, "referers": []string{"https://app.example.com/"}}, 400, "referers"},
		{"referer with path", map[string]any{"grants": grants, "referers": []string{"https://app.example.com/map"}}, 400, "referers"},
		{"referer without scheme", map[string]any{"grants": grants, "referers": []string{"app.example.com"}}, 400, "referers"},
		{"expiry in the past", map[string]any{"grants": grants, "expiration_date": past}, 400, "expiration_date"},
		{"expiry not RFC3339", map[string]any{"grants": grants, "expiration_date": "2026-03-02"}, 400, "expiration_date"},
		{"expiry as number", map[string]any{"grants": grants, "expiration_date": 1772409600}, 400, "expiration_date"},
		{"name not string", map[string]any{"grants": grants, "name": 3}, 400, "name"},
		{"not an object", `[1,2]`, 400, "JSON"},
		{"malformed", `{"grants":`, 400, "JSON"},
		{"too large", `{"grants":[],"pad":"` + strings.Repeat("x", maxBody) + `"}`, 413, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			r := e.do("POST", "/v3/tokens", tc.body, append(bearer(e.oauth()), "Content-Type", "application/json")...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 200 {
				return
			}
			m := r.obj(t)
			if _, ok := m["description"].(string); !ok {
				t.Errorf("no description: %s", r.body)
			}
			if e, _ := m["error"].(string); !strings.Contains(e, tc.errSub) {
				t.Errorf("error %q does not mention %q", e, tc.errSub)
			}
		})
	}
}

func TestTokenDefaults(t *testing.T) {
	e := newEnv(t, Config{})
	oauth := e.oauth()
	r := e.do("POST", "/v3/tokens", map[string]any{"grants": []map[string]string{{"connection_name": "c", "source": "*"}}}, bearer(oauth)...)
	m := r.obj(t)
	assertJSONEqual(t, "defaults", []any{m["referers"], m["allowed_apis"], m["name"]}, []any{[]any{}, []any{}, ""})
	// With allowed_apis omitted every data API refuses the token.
	tok := m["token"].(string)
	for _, api := range []string{"sql", "maps"} {
		r := e.do("GET", query("/v3/"+api+"/c/query", bostonSQL, ""), nil, bearer(tok)...)
		if r.status != 403 || r.obj(t)["error"] != "Forbidden: this token does not allow the "+api+" API" {
			t.Errorf("%s with no allowed_apis: %d %s", api, r.status, r.body)
		}
	}
}

func TestPatchToken(t *testing.T) {
	e := newEnv(t, Config{})
	oauth := e.oauth()
	tok := e.createToken(oauth, tokenReq("c", "*", "sql"))
	tests := []struct {
		name   string
		body   any
		status int
	}{
		{"expiration_date rejected", map[string]any{"expiration_date": "2030-01-01T00:00:00Z"}, 400},
		{"null expiration_date rejected", map[string]any{"expiration_date": nil}, 400},
		{"empty grants", map[string]any{"grants": []any{}}, 400},
		{"bad referer", map[string]any{"referers": []string{"https://x.example/"}}, 400},
		{"bad api", map[string]any{"allowed_apis": []string{"nope"}}, 400},
		{"referers only", map[string]any{"referers": []string{"https://x.example"}}, 200},
		{"empty body object", map[string]any{}, 200},
	}
	for _, tc := range tests {
		r := e.do("PATCH", "/v3/tokens/"+tok, tc.body, bearer(oauth)...)
		if r.status != tc.status {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	info, _ := e.sim.Token(tok)
	if len(info.Grants) != 1 || info.Grants[0].Source != "*" || len(info.Referers) != 1 || info.AllowedAPIs[0] != "sql" || !info.ExpiresAt.IsZero() {
		t.Errorf("token after patches: %+v", info)
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
