package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
)

const idpAudience = "tokenbroker-api"

var idpNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// newTestIdP starts a verifier for iss, with cfg's zero fields filled in for
// the test: the fixed clock, the audience, a silent logger. Its refresh
// goroutine ends with the test.
func newTestIdP(t *testing.T, iss *idptest.Issuer, cfg IdPConfig) *IdP {
	t.Helper()
	cfg.Issuer = iss.URL()
	if cfg.Audience == "" {
		cfg.Audience = idpAudience
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return idpNow }
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	p, err := NewIdP(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewIdP: %v", err)
	}
	return p
}

// idpClaims are the claims of a valid IdP token at idpNow.
func idpClaims(iss *idptest.Issuer) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":    iss.URL(),
		"aud":    []string{idpAudience, "another-client"},
		"sub":    "00u1a2b3c4",
		"groups": []string{"BOSTON", "NEW YORK"},
		"jti":    "jti-1",
		"iat":    idpNow.Unix(),
		"exp":    idpNow.Add(time.Hour).Unix(),
	}
}

func idpWith(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	c[k] = v
	return c
}

func idpWithout(c jwt.MapClaims, k string) jwt.MapClaims {
	delete(c, k)
	return c
}

func TestIdPAcceptsValidTokens(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			iss := idptest.New(t, alg)
			p := newTestIdP(t, iss, IdPConfig{Name: "corp", Algorithms: []string{alg}})
			if p.Issuer() != iss.URL() {
				t.Fatalf("Issuer() = %q", p.Issuer())
			}
			got, err := p.Verify(context.Background(), iss.Sign(t, idpClaims(iss)))
			if err != nil {
				t.Fatalf("valid token refused: %v", err)
			}
			want := Principal{
				Kind: KindIdP, Subject: "00u1a2b3c4", Group: "BOSTON",
				SessionID: idpSessionID(iss.URL(), "jti-1", ""), SessionExpiry: idpNow.Add(time.Hour + idpDefaultLeeway),
			}
			if got.Kind != want.Kind || got.Subject != want.Subject || got.Group != want.Group || got.Admin ||
				got.SessionID != want.SessionID || !got.SessionExpiry.Equal(want.SessionExpiry) {
				t.Fatalf("principal = %+v, want %+v", got, want)
			}
		})
	}
}

// TestIdPRefuses presents forged, tampered and invalid tokens, then tokens
// that are valid only thanks to the rules' tolerances.
func TestIdPRefuses(t *testing.T) {
	iss := idptest.New(t, "RS256")
	attacker := idptest.New(t, "RS256")
	p := newTestIdP(t, iss, IdPConfig{Name: "corp"})
	valid := func() jwt.MapClaims { return idpClaims(iss) }
	good := iss.Sign(t, valid())
	tests := idpRefusedTokens(t, iss, attacker, good)
	before := iss.JWKSRequests()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Verify(context.Background(), tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", got, err, tt.want)
			}
			if tt.want == ErrNoGroup && errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("%v: an authentic token without group is not unauthenticated", err)
			}
			// Nothing from the token is echoed back.
			for _, leak := range []string{"passwd", "1=1", "AAAA", "no-such-key", "/jwks", attacker.URL(), iss.KID()} {
				if strings.Contains(err.Error(), leak) {
					t.Fatalf("error %q echoes %q", err, leak)
				}
			}
		})
	}
	// Every unknown kid above asked for a refetch; the limiter let one through.
	if n := iss.JWKSRequests() - before; n > 1 {
		t.Fatalf("the refused tokens caused %d JWKS fetches, want at most 1", n)
	}
	if n := attacker.JWKSRequests(); n != 0 {
		t.Fatalf("the verifier fetched the attacker's JWKS %d times", n)
	}

	accepted := map[string]jwt.MapClaims{
		"aud as a string":       idpWith(valid(), "aud", idpAudience),
		"expired within leeway": idpWith(valid(), "exp", idpNow.Add(-29*time.Second).Unix()),
		"nbf within leeway":     idpWith(valid(), "nbf", idpNow.Add(29*time.Second).Unix()),
		"iat within leeway":     idpWith(valid(), "iat", idpNow.Add(29*time.Second).Unix()),
		"group as a string":     idpWith(valid(), "groups", "BOSTON"),
		"no iat":                idpWithout(valid(), "iat"),
	}
	for name, c := range accepted {
		t.Run(name, func(t *testing.T) {
			if _, err := p.Verify(context.Background(), iss.Sign(t, c)); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
	if _, err := p.Verify(context.Background(), good); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
}

// idpRefusedTokens are tokens of iss, or made from its good token, that
// must be refused with want; attacker is another issuer, with its own keys.
func idpRefusedTokens(t *testing.T, iss, attacker *idptest.Issuer, good string) []struct {
	name  string
	token string
	want  error
} {
	t.Helper()
	valid := func() jwt.MapClaims { return idpClaims(iss) }
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString

	// alg none, as RFC 8725 §2.1 describes it: no signature at all.
	noneHeader := b64([]byte(fmt.Sprintf(`{"alg":"none","typ":"JWT","kid":%q}`, iss.KID())))
	// Key confusion: HS256 with the IdP's public key, as PEM, as the secret.
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, valid())
	confused.Header["kid"] = iss.KID()
	confusedTok, err := confused.SignedString(iss.PublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	// The payload of a valid token with the group changed, its signature kept.
	tampered := valid()
	tampered["groups"] = []string{"NEW YORK"}
	tamperedPayload := idpPayload(t, tampered)
	longKID := strings.Repeat("A", 10_000)

	return []struct {
		name  string
		token string
		want  error
	}{
		{"alg none, no signature", noneHeader + "." + parts[1] + ".", ErrUnauthenticated},
		{"alg none, signature kept", noneHeader + "." + parts[1] + "." + parts[2], ErrUnauthenticated},
		{"header says none, RS256 signature", iss.SignWith(t, map[string]any{"alg": "none"}, valid()), ErrUnauthenticated},
		{"HS256 with the public key PEM as secret", confusedTok, ErrUnauthenticated},
		{"unknown kid", iss.SignWith(t, map[string]any{"kid": "no-such-key"}, valid()), ErrUnauthenticated},
		{"kid path traversal", iss.SignWith(t, map[string]any{"kid": "../../etc/passwd"}, valid()), ErrUnauthenticated},
		{"kid of 10 kB", iss.SignWith(t, map[string]any{"kid": longKID}, valid()), ErrUnauthenticated},
		{"kid SQL injection", iss.SignWith(t, map[string]any{"kid": "' OR 1=1 --"}, valid()), ErrUnauthenticated},
		{"kid a URL", iss.SignWith(t, map[string]any{"kid": attacker.URL() + "/jwks"}, valid()), ErrUnauthenticated},
		{"kid not a string", iss.SignWith(t, map[string]any{"kid": 7}, valid()), ErrUnauthenticated},
		{"kid empty", iss.SignWith(t, map[string]any{"kid": ""}, valid()), ErrUnauthenticated},
		{"no kid", iss.SignWith(t, map[string]any{"kid": nil}, valid()), ErrUnauthenticated},
		{"another key under the IdP's kid", attacker.SignWith(t, map[string]any{"kid": iss.KID()}, valid()), ErrUnauthenticated},
		{"jku to the attacker's JWKS", attacker.SignWith(t, map[string]any{"jku": attacker.URL() + "/jwks"}, valid()), ErrUnauthenticated},
		{"wrong iss", iss.Sign(t, idpWith(valid(), "iss", attacker.URL())), ErrUnauthenticated},
		{"no iss", iss.Sign(t, idpWithout(valid(), "iss")), ErrUnauthenticated},
		{"wrong aud", iss.Sign(t, idpWith(valid(), "aud", []string{"another-client"})), ErrUnauthenticated},
		{"wrong aud string", iss.Sign(t, idpWith(valid(), "aud", "another-client")), ErrUnauthenticated},
		{"empty aud", iss.Sign(t, idpWith(valid(), "aud", []string{})), ErrUnauthenticated},
		{"no aud", iss.Sign(t, idpWithout(valid(), "aud")), ErrUnauthenticated},
		{"expired beyond leeway", iss.Sign(t, idpWith(valid(), "exp", idpNow.Add(-31*time.Second).Unix())), ErrUnauthenticated},
		{"nbf beyond leeway", iss.Sign(t, idpWith(valid(), "nbf", idpNow.Add(31*time.Second).Unix())), ErrUnauthenticated},
		{"iat beyond leeway", iss.Sign(t, idpWith(valid(), "iat", idpNow.Add(31*time.Second).Unix())), ErrUnauthenticated},
		{"tampered payload", parts[0] + "." + b64(tamperedPayload) + "." + parts[2], ErrUnauthenticated},
		{"1 MiB token", parts[0] + "." + strings.Repeat("A", 1<<20) + "." + parts[2], ErrUnauthenticated},
		{"garbled", "not-a-jwt", ErrUnauthenticated},
		{"no exp", iss.Sign(t, idpWithout(valid(), "exp")), ErrUnauthenticated},
		{"no sub", iss.Sign(t, idpWithout(valid(), "sub")), ErrUnauthenticated},
		{"sub not a string", iss.Sign(t, idpWith(valid(), "sub", 42)), ErrUnauthenticated},
		{"no group", iss.Sign(t, idpWithout(valid(), "groups")), ErrNoGroup},
		{"empty group list", iss.Sign(t, idpWith(valid(), "groups", []string{})), ErrNoGroup},
		{"group not a string", iss.Sign(t, idpWith(valid(), "groups", 7)), ErrNoGroup},
		{"empty group", iss.Sign(t, idpWith(valid(), "groups", "")), ErrNoGroup},
	}
}

// idpPayload encodes claims as golang-jwt does when it signs, so a tampered
// payload differs from the signed one only where the test changed it.
func idpPayload(t *testing.T, c jwt.MapClaims) []byte {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SigningString()
	if err != nil {
		t.Fatal(err)
	}
	p, err := base64.RawURLEncoding.DecodeString(strings.Split(s, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIdPSessionID checks that IdP tokens can be revoked through the Router
// like sessions: by jti, or by the digest of the issuer and the signing input
// (header.payload) when it has none.
func TestIdPSessionID(t *testing.T) {
	iss := idptest.New(t, "ES256")
	p := newTestIdP(t, iss, IdPConfig{Algorithms: []string{"ES256"}})
	noJTI := iss.Sign(t, idpWithout(idpClaims(iss), "jti"))
	sum := sha256.Sum256([]byte(iss.URL() + "\x00" + noJTI[:strings.LastIndexByte(noJTI, '.')]))
	digestID := "idp:" + hex.EncodeToString(sum[:])
	got, err := p.Verify(context.Background(), noJTI)
	if err != nil {
		t.Fatal(err)
	}
	if got.SessionID != digestID {
		t.Fatalf("SessionID without jti = %q, want %q", got.SessionID, digestID)
	}

	r, err := NewRouter(RouterConfig{Verifiers: []Verifier{p}, Revocations: fakeRevocations{idpSessionID(iss.URL(), "jti-1", ""): true, digestID: true}})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"by jti": iss.Sign(t, idpClaims(iss)), "by digest": noJTI} {
		if _, err := r.Authenticate(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("revoked %s: %v, want ErrUnauthenticated", name, err)
		}
	}
	if _, err := r.Authenticate(context.Background(), iss.Sign(t, idpWith(idpClaims(iss), "jti", "jti-2"))); err != nil {
		t.Fatalf("unrevoked IdP token refused by the router: %v", err)
	}
}

func TestNewIdPValidatesEverything(t *testing.T) {
	_, err := NewIdP(context.Background(), IdPConfig{
		Name:               "corp",
		Issuer:             "ftp://idp.example",
		JWKSURL:            "/jwks",
		Algorithms:         []string{"RS256", "HS256", "XX999"},
		GroupClaim:         "realm_access..roles",
		GroupMatch:         "carto-(",
		AdminClaim:         "roles",
		Leeway:             time.Hour,
		RefreshInterval:    -time.Second,
		UnknownKIDInterval: -time.Second,
	})
	if err == nil {
		t.Fatal("accepted a bad config")
	}
	for _, want := range []string{
		`"corp"`, "issuer", "JWKS URL", "audience is required", `"HS256" is symmetric`, `"XX999" is not supported`,
		"group claim", "group match", "admin claim and admin value", "leeway", "refresh interval", "unknown-kid",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// A principal keeps the token's top-level string claims, bounded, for
// named queries' claim-bound parameters.
func TestStringClaims(t *testing.T) {
	claims := jwt.MapClaims{"sub": "u", "tenant_id": "acme-7", "groups": []any{"a"}, "exp": 12.0,
		"long": strings.Repeat("x", MaxClaimLen+1)}
	got := stringClaims(claims)
	if len(got) != 2 || got["tenant_id"] != "acme-7" || got["sub"] != "u" {
		t.Fatalf("string claims: %v, want sub and tenant_id alone", got)
	}
	for i := range MaxClaims + 10 {
		claims[fmt.Sprintf("c%03d", i)] = "v"
	}
	if n := len(stringClaims(claims)); n != MaxClaims {
		t.Errorf("%d claims kept, want the bound %d", n, MaxClaims)
	}
}
