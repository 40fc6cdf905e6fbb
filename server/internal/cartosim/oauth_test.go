package cartosim

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestOAuthToken(t *testing.T) {
	good := map[string]string{
		"grant_type": "client_credentials", "client_id": testClient,
		"client_secret": testSecret, "audience": defaultAudience,
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		fields  map[string]string
		json    bool
		status  int
		errCode string
		errDesc string
	}{
		{"form", good, false, 200, "", ""},
		{"json", good, true, 200, "", ""},
		{"wrong secret", with("client_secret", "nope"), false, 401, "access_denied", "Unauthorized"},
		{"wrong secret json", with("client_secret", "nope"), true, 401, "access_denied", "Unauthorized"},
		{"unknown client", with("client_id", "someone"), false, 401, "access_denied", "Unauthorized"},
		{"missing secret", with("client_secret", ""), false, 401, "access_denied", "Unauthorized"},
		{"wrong audience", with("audience", "carto-cloud-native"), false, 403, "access_denied", "Service not enabled within domain: carto-cloud-native"},
		{"missing audience", with("audience", ""), true, 403, "access_denied", "Service not enabled within domain: "},
		{"missing grant type", with("grant_type", ""), false, 400, "invalid_request", ""},
		{"other grant type", with("grant_type", "password"), false, 400, "unsupported_grant_type", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{OAuthTTL: 2 * time.Hour})
			var r response
			if tc.json {
				r = e.do("POST", "/oauth/token", tc.fields)
			} else {
				form := url.Values{}
				for k, v := range tc.fields {
					form.Set(k, v)
				}
				r = e.do("POST", "/oauth/token", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			m := r.obj(t)
			if tc.status != 200 {
				if m["error"] != tc.errCode || (tc.errDesc != "" && m["error_description"] != tc.errDesc) {
					t.Errorf("error body %s", r.body)
				}
				if _, ok := m["error_description"].(string); !ok {
					t.Errorf("no error_description in %s", r.body)
				}
				if st := e.sim.Stats(); st.OAuthRequests != 1 || st.OAuthIssued != 0 {
					t.Errorf("stats %+v", st)
				}
				return
			}
			tok, _ := m["access_token"].(string)
			if !strings.HasPrefix(tok, "sim-oauth-") || len(tok) < 30 {
				t.Errorf("access_token %q", tok)
			}
			if m["token_type"] != "Bearer" || m["expires_in"] != 7200.0 || m["scope"] != "" {
				t.Errorf("body %s", r.body)
			}
			if st := e.sim.Stats(); st.OAuthRequests != 1 || st.OAuthIssued != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestOAuthMalformed(t *testing.T) {
	e := newEnv(t, Config{})
	if r := e.do("POST", "/oauth/token", `{"grant_type":`, "Content-Type", "application/json"); r.status != 400 || r.obj(t)["error"] != "invalid_request" {
		t.Errorf("bad JSON: %d %s", r.status, r.body)
	}
	big := "grant_type=client_credentials&pad=" + strings.Repeat("x", maxBody)
	if r := e.do("POST", "/oauth/token", big, "Content-Type", "application/x-www-form-urlencoded"); r.status != 413 {
		t.Errorf("big body: %d", r.status)
	}
	// A JSON body without a JSON content type is still understood.
	body := `{"grant_type":"client_credentials","client_id":"client-1","client_secret":"secret-1","audience":"carto-cloud-native-api"}`
	if r := e.do("POST", "/oauth/token", body, "Content-Type", "text/plain"); r.status != 200 {
		t.Errorf("JSON as text/plain: %d %s", r.status, r.body)
	}
}

func TestOAuthExpiry(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.oauth()
	if r := e.do("GET", "/v3/tokens", nil, bearer(tok)...); r.status != 200 {
		t.Fatalf("fresh token: %d %s", r.status, r.body)
	}
	e.clock.Advance(24*time.Hour - time.Second)
	if r := e.do("GET", "/v3/tokens", nil, bearer(tok)...); r.status != 200 {
		t.Fatalf("token 1s before expiry: %d", r.status)
	}
	e.clock.Advance(time.Second)
	r := e.do("GET", "/v3/tokens", nil, bearer(tok)...)
	if r.status != 401 {
		t.Fatalf("expired token: %d", r.status)
	}
	if m := r.obj(t); m["error"] != "Unauthorized" || !strings.Contains(m["description"].(string), "expired") {
		t.Errorf("body %s", r.body)
	}
	// A new token works again.
	if r := e.do("GET", "/v3/tokens", nil, bearer(e.oauth())...); r.status != 200 {
		t.Errorf("new token: %d", r.status)
	}
}
