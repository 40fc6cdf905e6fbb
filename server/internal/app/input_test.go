package app_test

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
)

// Every unacceptable bearer gets 401 over REST (with an RFC 6750 challenge)
// and UNAUTHENTICATED over gRPC.
func TestBadBearersAreRefused(t *testing.T) {
	b := startBroker(t, nil)
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "tokenbroker", "aud": "tokenbroker", "sub": "user.boston@acme.com", "group": "BOSTON", "jti": "x1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(key []byte, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign([]byte(jwtSecret), claims(nil))
	parts := strings.Split(good, ".")
	algNone := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	tests := []struct{ name, header string }{
		{"missing", ""},
		{"garbled", "Bearer garbage.not.jwt"},
		{"no token", "Bearer "},
		{"basic scheme", "Basic dXNlcjpwYXNz"},
		{"expired", "Bearer " + sign([]byte(jwtSecret), claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }))},
		{"wrongly signed", "Bearer " + sign([]byte("another-secret-another-secret-0123"), claims(nil))},
		{"alg none", "Bearer " + algNone},
		{"another group forged", "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"tokenbroker","aud":"tokenbroker","sub":"x","group":"NEW YORK","jti":"y","exp":9999999999}`)) + "." + parts[2]},
		{"CARTO token as session", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhIjoiYWNfc2ltIiwianRpIjoiYzVmNmU0ZmMifQ.d5lY7RXBKBFHUfFJlo_ijLkotlLJLL4Hy1PUynL_p3Q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.header != "" {
				hdr.Set("Authorization", tt.header)
			}
			for _, path := range []string{"/carto-token", "/v1/carto-token", "/v1/revoke"} {
				resp := b.do(http.MethodPost, path, "", `{"session":true}`, hdr)
				body := decode(t, resp)
				if resp.StatusCode != http.StatusUnauthorized || body["code"].(float64) != float64(codes.Unauthenticated) || body["message"] == "" {
					t.Fatalf("%s: %d %v", path, resp.StatusCode, body)
				}
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("%s: WWW-Authenticate %q", path, resp.Header.Get("WWW-Authenticate"))
				}
			}
			ctx := context.Background()
			if tt.header != "" {
				ctx = withRawAuthorization(tt.header)
			}
			if _, err := b.grpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("gRPC: %v", err)
			}
		})
	}
	if s := b.sim.Stats(); s.TokensCreated != 0 {
		t.Fatalf("a refused caller caused %d token creations", s.TokensCreated)
	}
	// The genuine token passes, so the refusals above were about the tokens.
	if code, _ := b.post("/carto-token", good, ""); code != http.StatusOK {
		t.Fatalf("a valid forged-by-test session was refused: %d", code)
	}
}

func TestBadRequests(t *testing.T) {
	b := startBroker(t, nil)
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
		{"body too large", "POST", "/login", "", `{"username":"` + strings.Repeat("a", 70<<10) + `"}`, 413, codes.InvalidArgument},
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
	// A 1 MiB bearer: refused before anything reads it, on both transports.
	huge := strings.Repeat("a", 1<<20)
	resp := b.do(http.MethodPost, "/carto-token", huge, "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("1 MiB bearer over REST: %d, want 431", resp.StatusCode)
	}
	if _, err := b.grpc.IssueCartoToken(withBearer(huge), &tokenbrokerv1.IssueCartoTokenRequest{}); err == nil || status.Code(err) == codes.OK {
		t.Fatal("1 MiB bearer over gRPC accepted")
	}
	// gRPC refuses an oversized message before decoding it.
	_, err := b.grpc.Login(context.Background(), &tokenbrokerv1.LoginRequest{Username: strings.Repeat("a", 100<<10), Password: "x"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("100 KiB gRPC message: %v", err)
	}
}

// Random bodies on every route never crash the broker nor get a 5xx.
func TestNoPanicOnAnyInput(t *testing.T) {
	b := startBroker(t, nil)
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
