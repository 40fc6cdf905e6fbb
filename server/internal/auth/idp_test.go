package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

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

func TestIdPRefuses(t *testing.T) {
	iss := idptest.New(t, "RS256")
	attacker := idptest.New(t, "RS256")
	p := newTestIdP(t, iss, IdPConfig{Name: "corp"})
	valid := func() jwt.MapClaims { return idpClaims(iss) }
	good := iss.Sign(t, valid())
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

	tests := []struct {
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

	r, err := NewRouter(fakeRevocations{idpSessionID(iss.URL(), "jti-1", ""): true, digestID: true}, p)
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

func TestIdPGroupAndAdminClaims(t *testing.T) {
	iss := idptest.New(t, "RS256")
	keycloak := IdPConfig{GroupClaim: "realm_access.roles", GroupMatch: "^carto-(.+)$", AdminClaim: "realm_access.roles", AdminValue: "carto-admin"}
	roles := func(r ...any) jwt.MapClaims {
		return idpWith(idpWithout(idpClaims(iss), "groups"), "realm_access", map[string]any{"roles": r})
	}
	tests := []struct {
		name      string
		cfg       IdPConfig
		claims    jwt.MapClaims
		wantGroup string
		wantAdmin bool
		wantErr   error
	}{
		{"default: first of the list", IdPConfig{}, idpClaims(iss), "BOSTON", false, nil},
		{"default: a string", IdPConfig{}, idpWith(idpClaims(iss), "groups", "NEW YORK"), "NEW YORK", false, nil},
		{"capture on a nested list", keycloak, roles("user", "carto-BOSTON"), "BOSTON", false, nil},
		{"first match wins", keycloak, roles("carto-NYC", "carto-BOSTON"), "NYC", false, nil},
		{"non-strings skipped", keycloak, roles(7, map[string]any{"x": 1}, "carto-BOSTON"), "BOSTON", false, nil},
		{"empty capture skipped", IdPConfig{GroupClaim: "realm_access.roles", GroupMatch: "^carto-(.*)$"}, roles("carto-", "carto-SF"), "SF", false, nil},
		{"admin in the list", keycloak, roles("carto-BOSTON", "carto-admin"), "BOSTON", true, nil},
		{"admin as a string", IdPConfig{AdminClaim: "role", AdminValue: "admin"}, idpWith(idpClaims(iss), "role", "admin"), "BOSTON", true, nil},
		{"admin value must be exact", IdPConfig{AdminClaim: "role", AdminValue: "admin"}, idpWith(idpClaims(iss), "role", "administrator"), "BOSTON", false, nil},
		{"no admin claim", IdPConfig{AdminClaim: "role", AdminValue: "admin"}, idpClaims(iss), "BOSTON", false, nil},
		{"match without capture: the whole value", IdPConfig{GroupMatch: "^team-"}, idpWith(idpClaims(iss), "groups", []string{"x", "team-a"}), "team-a", false, nil},
		{"nothing matches", keycloak, roles("user", "offline_access"), "", false, ErrNoGroup},
		{"nested claim missing", keycloak, idpClaims(iss), "", false, ErrNoGroup},
		{"path through a non-object", keycloak, idpWith(idpClaims(iss), "realm_access", "roles"), "", false, ErrNoGroup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestIdP(t, iss, tt.cfg)
			got, err := p.Verify(context.Background(), iss.Sign(t, tt.claims))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if got.Group != tt.wantGroup || got.Admin != tt.wantAdmin {
				t.Fatalf("group, admin = %q, %v; want %q, %v", got.Group, got.Admin, tt.wantGroup, tt.wantAdmin)
			}
		})
	}
}

func TestIdPKeyRotation(t *testing.T) {
	tests := []struct {
		name string
		cfg  IdPConfig
		// refresh makes the verifier see the retired JWKS.
		refresh func(t *testing.T, iss *idptest.Issuer, p *IdP, old string)
	}{
		{
			name: "refetch on unknown kid",
			cfg:  IdPConfig{UnknownKIDInterval: time.Millisecond, RefreshInterval: time.Hour},
			refresh: func(t *testing.T, iss *idptest.Issuer, p *IdP, _ string) {
				// A token with a kid the cache lacks makes it refetch.
				_, _ = p.Verify(context.Background(), iss.SignWith(t, map[string]any{"kid": "unknown"}, idpClaims(iss)))
			},
		},
		{
			name: "periodic refresh",
			cfg:  IdPConfig{UnknownKIDInterval: time.Hour, RefreshInterval: 10 * time.Millisecond},
			refresh: func(t *testing.T, _ *idptest.Issuer, p *IdP, old string) {
				// Wait for the background refresh to drop the old key.
				deadline := time.Now().Add(10 * time.Second)
				for _, err := p.Verify(context.Background(), old); err == nil; _, err = p.Verify(context.Background(), old) {
					if time.Now().After(deadline) {
						t.Fatal("the retired key is still accepted after 10 s of 10 ms refreshes")
					}
					time.Sleep(5 * time.Millisecond)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := idptest.New(t, "RS256")
			p := newTestIdP(t, iss, tt.cfg)
			old := iss.Sign(t, idpClaims(iss))
			if _, err := p.Verify(context.Background(), old); err != nil {
				t.Fatalf("token of the first key refused: %v", err)
			}

			iss.Rotate(t)
			fresh := iss.Sign(t, idpClaims(iss))
			if _, err := p.Verify(context.Background(), fresh); err != nil {
				t.Fatalf("token of the rotated key refused, no restart should be needed: %v", err)
			}
			if _, err := p.Verify(context.Background(), old); err != nil {
				t.Fatalf("token of the old, still published key refused: %v", err)
			}

			iss.Retire()
			tt.refresh(t, iss, p, old)
			if _, err := p.Verify(context.Background(), old); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("token of the retired key: %v, want ErrUnauthenticated", err)
			}
			if _, err := p.Verify(context.Background(), fresh); err != nil {
				t.Fatalf("token of the current key refused after the refresh: %v", err)
			}
		})
	}
}

func TestIdPUnknownKIDFetchStorm(t *testing.T) {
	iss := idptest.New(t, "RS256")
	p := newTestIdP(t, iss, IdPConfig{}) // default: one unknown-kid refetch a minute
	tokens := make([]string, 200)
	for i := range tokens {
		tokens[i] = iss.SignWith(t, map[string]any{"kid": fmt.Sprintf("random-%d-%s", i, rand.Text())}, idpClaims(iss))
	}
	before := iss.JWKSRequests()
	var wg sync.WaitGroup
	errs := make([]error, len(tokens))
	for i, tok := range tokens {
		wg.Go(func() { _, errs[i] = p.Verify(context.Background(), tok) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("token %d with an unknown kid: %v", i, err)
		}
	}
	if n := iss.JWKSRequests() - before; n > 2 {
		t.Fatalf("200 unknown kids caused %d JWKS fetches, want at most 2", n)
	}
	// Known keys still work while unknown ones are being refused.
	if _, err := p.Verify(context.Background(), iss.Sign(t, idpClaims(iss))); err != nil {
		t.Fatal(err)
	}
}

func TestIdPOutage(t *testing.T) {
	t.Run("down at start", func(t *testing.T) {
		iss := idptest.New(t, "RS256")
		iss.SetDown(true)
		for name, cfg := range map[string]IdPConfig{
			"discovery": {Name: "corp-sso", Issuer: iss.URL(), Audience: idpAudience},
			"JWKS URL":  {Name: "corp-sso", Issuer: iss.URL(), Audience: idpAudience, JWKSURL: iss.URL() + idptest.JWKSPath},
		} {
			cfg.Logger = slog.New(slog.DiscardHandler)
			_, err := NewIdP(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), "corp-sso") {
				t.Errorf("%s: NewIdP with the IdP down = %v, want an error naming it", name, err)
			}
		}
	})
	t.Run("unreachable at start", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = NewIdP(t.Context(), IdPConfig{Name: "corp-sso", Issuer: "http://" + addr, Audience: idpAudience})
		if err == nil || !strings.Contains(err.Error(), "corp-sso") {
			t.Fatalf("NewIdP with nothing listening = %v, want an error naming the IdP", err)
		}
	})
	t.Run("down after start: known keys keep working", func(t *testing.T) {
		iss := idptest.New(t, "RS256")
		p := newTestIdP(t, iss, IdPConfig{RefreshInterval: 10 * time.Millisecond})
		iss.SetDown(true)
		// Let refreshes fail; the cache keeps the keys it has.
		deadline := time.Now().Add(10 * time.Second)
		for start := iss.JWKSRequests(); iss.JWKSRequests() < start+2; {
			if time.Now().After(deadline) {
				t.Fatal("no JWKS refresh in 10 s with a 10 ms interval")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := p.Verify(context.Background(), iss.Sign(t, idpClaims(iss))); err != nil {
			t.Fatalf("token refused during an IdP outage: %v", err)
		}
	})
}

func TestIdPDiscoveryChecks(t *testing.T) {
	iss := idptest.New(t, "RS256")
	serveDoc := func(doc string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.ReplaceAll(doc, "SELF", "http://"+r.Host))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name   string
		issuer string
		want   string
	}{
		{"issuer with a trailing slash the IdP does not use", iss.URL() + "/", "want exactly"},
		{"document of another issuer", serveDoc(`{"issuer":"` + iss.URL() + `","jwks_uri":"` + iss.URL() + `/jwks"}`), "want exactly"},
		{"jwks_uri not http", serveDoc(`{"issuer":"SELF","jwks_uri":"file:///etc/passwd"}`), "jwks_uri"},
		{"no jwks_uri", serveDoc(`{"issuer":"SELF"}`), "jwks_uri"},
		{"not JSON", serveDoc(`<html>`), "discovery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewIdP(t.Context(), IdPConfig{Issuer: tt.issuer, Audience: idpAudience, Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewIdP = %v, want an error about %q", err, tt.want)
			}
		})
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

func TestIdPRefreshStopsWithContext(t *testing.T) {
	iss := idptest.New(t, "RS256")
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := NewIdP(ctx, IdPConfig{
		Issuer: iss.URL(), Audience: idpAudience,
		Now: func() time.Time { return idpNow },
		// No idle connections: only the refresh goroutine may outlive a fetch.
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(ctx, iss.Sign(t, idpClaims(iss))); err != nil {
		t.Fatal(err)
	}
	if goleak.Find(ignore) == nil {
		t.Fatal("no refresh goroutine while ctx is live: this test would prove nothing")
	}
	cancel()
	goleak.VerifyNone(t, ignore)
}
