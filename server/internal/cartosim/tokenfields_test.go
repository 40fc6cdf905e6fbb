package cartosim

import (
	"strings"
	"testing"
	"time"
)

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
