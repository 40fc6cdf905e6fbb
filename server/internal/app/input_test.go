package app_test

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestBadRequests(t *testing.T) {
	b := startBroker(t)
	session := b.login("user.boston@acme.com", "boston")
	tests := []struct {
		name, method, path, bearer, body string
		wantHTTP                         int
		wantCode                         codes.Code
	}{
		{"malformed JSON login", "POST", "/login", "", `{"username":`, 400, codes.InvalidArgument},
		{"malformed JSON issue", "POST", "/v1/carto-token", session, `{{`, 400, codes.InvalidArgument},
		{"wrong JSON type", "POST", "/v1/login", "", `{"username":42,"password":"x"}`, 400, codes.InvalidArgument},
		{"JSON array body", "POST", "/login", "", `[]`, 400, codes.InvalidArgument},
		{"empty credentials", "POST", "/login", "", `{}`, 400, codes.InvalidArgument},
		{"wrong password", "POST", "/login", "", `{"username":"user.boston@acme.com","password":"nope"}`, 401, codes.Unauthenticated},
		{"unknown user", "POST", "/login", "", `{"username":"nobody@acme.com","password":"nope"}`, 401, codes.Unauthenticated},
		{"revoke without target", "POST", "/v1/revoke", session, `{}`, 400, codes.InvalidArgument},
		{"revoke session false", "POST", "/v1/revoke", session, `{"session":false}`, 400, codes.InvalidArgument},
		{"revoke empty token", "POST", "/v1/revoke", session, `{"carto_token":""}`, 400, codes.InvalidArgument},
		{"revoke two targets", "POST", "/v1/revoke", session, `{"session":true,"carto_token":"x"}`, 400, codes.InvalidArgument},
		{"another group", "POST", "/v1/carto-token", session, `{"group":"NEW YORK"}`, 403, codes.PermissionDenied},
		{"unknown route", "POST", "/v2/nothing", "", ``, 404, codes.NotFound},
		{"wrong method", "GET", "/login", "", ``, 405, codes.Unimplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := b.do(tt.method, tt.path, tt.bearer, tt.body, nil)
			body := decode(t, resp)
			if resp.StatusCode != tt.wantHTTP || body["code"] != float64(tt.wantCode) || body["message"] == "" {
				t.Fatalf("%d %v; want %d with code %v", resp.StatusCode, body, tt.wantHTTP, tt.wantCode)
			}
		})
	}
	// Unknown user and wrong password are indistinguishable.
	_, a := b.post("/login", "", `{"username":"user.boston@acme.com","password":"nope"}`)
	_, c := b.post("/login", "", `{"username":"nobody@acme.com","password":"nope"}`)
	if a["message"] != c["message"] {
		t.Fatalf("login failures differ: %v vs %v", a, c)
	}
	// Oversized bodies and headers: attack_http_test.go.
}

// Random bodies on every route never crash the broker nor get a 5xx.
func TestNoPanicOnAnyInput(t *testing.T) {
	b := startBroker(t)
	session := b.login("user.boston@acme.com", "boston")
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{`{`, `}`, `[`, `]`, `"`, `:`, `,`, `null`, `true`, `-1e999`, `"\u0000"`, `"session"`, `"carto_token"`, `"username"`, `"password"`, `"group"`, "\xff", `{"session":{}}`, `{"group":["x"]}`}
	paths := []string{"/login", "/carto-token", "/v1/login", "/v1/carto-token", "/v1/revoke"}
	for i := range 300 {
		var sb strings.Builder
		for range r.IntN(12) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		path := paths[i%len(paths)]
		resp := b.do(http.MethodPost, path, session, sb.String(), nil)
		body := decode(t, resp)
		if resp.StatusCode >= 500 {
			t.Fatalf("POST %s %q: %d %v", path, sb.String(), resp.StatusCode, body)
		}
	}
	if code, _ := b.post("/carto-token", session, ""); code != http.StatusOK {
		t.Fatalf("broker unhealthy after random input: %d", code)
	}
	if strings.Contains(b.logs.String(), "panic") {
		t.Fatal("a panic was logged")
	}
}
