package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

type fakeRevocations map[string]bool

func (f fakeRevocations) Revoked(_ context.Context, id string) (bool, error) {
	if id == "broken-store" {
		return false, errors.New("store down")
	}
	return f[id], nil
}

// newTestSessions returns the router a broker with only its own sessions
// uses, and the sessions.
func newTestSessions(t *testing.T, now func() time.Time, rev Revocations) (*Router, *Sessions) {
	t.Helper()
	s, err := NewSessions(SessionConfig{Keys: HMACKey(testSecret), Issuer: "tokenbroker", Audience: "tokenbroker", TTL: time.Hour, Leeway: 30 * time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(RouterConfig{Verifiers: []Verifier{s}, Revocations: rev})
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

// sign makes a token with arbitrary claims and key, as an attacker could.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSessionsRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	s, sessions := newTestSessions(t, func() time.Time { return now }, nil)
	tok, exp, err := sessions.Issue(context.Background(), User{Username: "user.boston@acme.com", Group: "BOSTON"})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("expiry = %v", exp)
	}
	p, err := s.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "user.boston@acme.com" || p.Group != "BOSTON" || p.Kind != KindUser || len(p.SessionID) != 32 || !p.SessionExpiry.Equal(exp.Add(30*time.Second)) {
		t.Fatalf("principal = %+v", p)
	}
	tok2, _, _ := sessions.Issue(context.Background(), User{Username: "user.boston@acme.com", Group: "BOSTON"})
	if p2, _ := s.Authenticate(context.Background(), tok2); p2.SessionID == p.SessionID {
		t.Fatal("two sessions share a jti")
	}
}

func TestSessionsRefuse(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, _ := newTestSessions(t, clock, fakeRevocations{"revoked-id": true})
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": "tokenbroker", "aud": []string{"tokenbroker"}, "sub": "u", "group": "BOSTON",
			"jti": "id-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}
	}
	with := func(k string, v any) jwt.MapClaims { c := valid(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := valid(); delete(c, k); return c }
	good := sign(t, jwt.SigningMethodHS256, testSecret, valid())
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	tampered := parts[0] + "." + b64([]byte(`{"iss":"tokenbroker","aud":["tokenbroker"],"sub":"u","group":"NEW YORK","jti":"id-1","iat":1,"exp":9999999999}`)) + "." + parts[2]
	algNone := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"garbled", "not-a-jwt", ErrUnauthenticated},
		{"empty", "", ErrUnauthenticated},
		{"alg none", algNone, ErrUnauthenticated},
		{"alg none signed by library", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid()), ErrUnauthenticated},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), valid()), ErrUnauthenticated},
		{"HS512 with the right secret", sign(t, jwt.SigningMethodHS512, testSecret, valid()), ErrUnauthenticated},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, valid()), ErrUnauthenticated},
		{"tampered payload", tampered, ErrUnauthenticated},
		{"expired beyond leeway", sign(t, jwt.SigningMethodHS256, testSecret, with("exp", now.Add(-31*time.Second).Unix())), ErrUnauthenticated},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, testSecret, with("iat", now.Add(time.Minute).Unix())), ErrUnauthenticated},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, testSecret, with("nbf", now.Add(time.Minute).Unix())), ErrUnauthenticated},
		{"no exp", sign(t, jwt.SigningMethodHS256, testSecret, without("exp")), ErrUnauthenticated},
		{"wrong iss", sign(t, jwt.SigningMethodHS256, testSecret, with("iss", "other")), ErrUnauthenticated},
		{"no iss", sign(t, jwt.SigningMethodHS256, testSecret, without("iss")), ErrUnauthenticated},
		{"wrong aud", sign(t, jwt.SigningMethodHS256, testSecret, with("aud", []string{"other"})), ErrUnauthenticated},
		{"empty aud", sign(t, jwt.SigningMethodHS256, testSecret, with("aud", []string{})), ErrUnauthenticated},
		{"no aud", sign(t, jwt.SigningMethodHS256, testSecret, without("aud")), ErrUnauthenticated},
		{"no group", sign(t, jwt.SigningMethodHS256, testSecret, without("group")), ErrUnauthenticated},
		{"no sub", sign(t, jwt.SigningMethodHS256, testSecret, without("sub")), ErrUnauthenticated},
		{"no jti", sign(t, jwt.SigningMethodHS256, testSecret, without("jti")), ErrUnauthenticated},
		{"revoked", sign(t, jwt.SigningMethodHS256, testSecret, with("jti", "revoked-id")), ErrUnauthenticated},
		{"revocation list down", sign(t, jwt.SigningMethodHS256, testSecret, with("jti", "broken-store")), ErrRevocationUnavailable},
		{"1 MiB token", strings.Repeat("a", 1<<20), ErrUnauthenticated},
		{"unknown issuer", sign(t, jwt.SigningMethodHS256, testSecret, with("iss", "https://evil.example")), ErrUnauthenticated},
		{"kid on an HS256 session", signKid(t, "k1", valid()), ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Authenticate(context.Background(), tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Authenticate = %+v, %v; want %v", p, err, tt.want)
			}
		})
	}

	accepted := map[string]jwt.MapClaims{
		"aud as a string":       with("aud", "tokenbroker"),
		"expired within leeway": with("exp", now.Add(-29*time.Second).Unix()),
		"iat within leeway":     with("iat", now.Add(29*time.Second).Unix()),
	}
	for name, c := range accepted {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Authenticate(context.Background(), sign(t, jwt.SigningMethodHS256, testSecret, c)); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
	if _, err := s.Authenticate(context.Background(), good); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
}

func signKid(t *testing.T, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSessionsValidates(t *testing.T) {
	_, err := NewSessions(SessionConfig{Keys: HMACKey("short"), TTL: 0, Leeway: time.Hour})
	if err == nil {
		t.Fatal("accepted a bad config")
	}
	for _, want := range []string{"at least 32", "issuer and audience", "TTL", "leeway"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
