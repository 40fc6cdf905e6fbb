package auth

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// routerOverStore wires revocation as the broker does: a Router over the
// verifiers, asking a tokencache.Cache loaded from store, all on clock.
// Called again over the same store, it is a restarted broker.
func routerOverStore(t *testing.T, clock *clocktest.Clock, store store.Store, verifiers ...Verifier) (*Router, *tokencache.Cache) {
	t.Helper()
	cache := tokencache.New(tokencache.Config{Store: store, Now: clock.Now})
	if err := cache.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(RouterConfig{Verifiers: verifiers, Revocations: RevocationsFunc(cache.SessionRevoked), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r, cache
}

// logout revokes the session of token exactly as broker.RevokeSession does:
// its SessionID, until its SessionExpiry.
func logout(t *testing.T, r *Router, cache *tokencache.Cache, token string) {
	t.Helper()
	p, err := r.Authenticate(t.Context(), token)
	if err != nil {
		t.Fatalf("the token to revoke is refused: %v", err)
	}
	if err := cache.RevokeSession(t.Context(), p.SessionID, p.SessionExpiry); err != nil {
		t.Fatal(err)
	}
}

func wantRefused(t *testing.T, r *Router, what, token string) {
	t.Helper()
	if p, err := r.Authenticate(context.Background(), token); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("%s: accepted as %+v (err %v), want ErrUnauthenticated", what, p, err)
	}
}

// Finding 4: a revoked IdP token without jti was replayed by re-encoding its
// signature (a different string, so a different revocation id), even after
// a restart.
func TestAttackRevokedIdPTokenReencodedSignature(t *testing.T) {
	// RS256: the unused low bits of the signature's last base64url character
	// set; ES256: s replaced by n−s (high-s), which verifies as well.
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			clock := clocktest.New()
			clock.Set(idpNow)
			iss := idptest.New(t, alg)
			idp := newTestIdP(t, iss, IdPConfig{Algorithms: []string{alg}})
			store := memstore.New(memstore.Config{Now: clock.Now})
			r, cache := routerOverStore(t, clock, store, idp)

			tok := iss.Sign(t, idpWithout(idpClaims(iss), "jti"))
			variant := iss.SignatureVariant(t, tok)
			checkSignature(t, iss, alg, variant)

			logout(t, r, cache, tok)
			wantRefused(t, r, "the revoked token", tok)
			wantRefused(t, r, "its re-encoded variant", variant)

			restarted, _ := routerOverStore(t, clock, store, idp)
			wantRefused(t, restarted, "the revoked token after a restart", tok)
			wantRefused(t, restarted, "its re-encoded variant after a restart", variant)
		})
	}
}

// checkSignature proves the variant is a real attack: decoded leniently, its
// signature is a valid one of its signing input.
func checkSignature(t *testing.T, iss *idptest.Issuer, alg, token string) {
	t.Helper()
	block, _ := pem.Decode(iss.PublicKeyPEM())
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	dot := strings.LastIndexByte(token, '.')
	raw, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	if err := jwt.GetSigningMethod(alg).Verify(token[:dot], raw, pub); err != nil {
		t.Fatalf("the variant's signature does not verify: %v", err)
	}
}

// Finding 4: the session parser refuses a non-canonical encoding too, so a
// session's string is the only one its signature is accepted under.
func TestAttackSessionNonCanonicalEncoding(t *testing.T) {
	r, s := newTestSessions(t, func() time.Time { return idpNow }, nil)
	tok, _, err := s.Issue(context.Background(), User{Username: "u", Group: "BOSTON"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, r, "a session with a non-canonical signature", idptest.NonCanonical(t, tok))
}

// Finding 6: a certificate of the client CA whose CN is a service's SPIFFE ID
// but whose SANs say something else obtained that service's identity.
func TestAttackServiceIdentityFromCommonName(t *testing.T) {
	s, err := NewServices([]Service{
		{Name: "reporting", Identity: "spiffe://acme.com/reporting", Groups: []string{"BOSTON"}},
		{Name: "batch", Identity: "uri:spiffe://acme.com/batch", Groups: []string{"BOSTON"}},
		{Name: "legacy", Identity: "cn:legacy", Groups: []string{"BOSTON"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	spiffe := func(s string) []*url.URL { u, _ := url.Parse(s); return []*url.URL{u} }
	tests := []struct {
		name string
		cert *x509.Certificate
	}{
		{"CN is a URI identity, DNS SAN only", &x509.Certificate{Subject: pkix.Name{CommonName: "spiffe://acme.com/reporting"}, DNSNames: []string{"evil.acme.com"}}},
		{"CN is a URI identity, no SANs", &x509.Certificate{Subject: pkix.Name{CommonName: "spiffe://acme.com/batch"}}},
		{"DNS SAN spelling a URI identity", &x509.Certificate{DNSNames: []string{"spiffe://acme.com/reporting"}}},
		{"CN identity on a certificate with SANs", &x509.Certificate{Subject: pkix.Name{CommonName: "legacy"}, URIs: spiffe("spiffe://acme.com/other")}},
		{"one certificate, two services", &x509.Certificate{URIs: append(spiffe("spiffe://acme.com/reporting"), spiffe("spiffe://acme.com/batch")...)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := s.Identify(tt.cert); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("identified as %+v (err %v), want ErrUnauthenticated", p, err)
			}
		})
	}
}

// Finding 8: a revoked session (or IdP token) was accepted again during the
// clock-skew leeway after its exp, because its revocation ended at exp.
func TestAttackRevokedTokenWithinLeewayAfterExpiry(t *testing.T) {
	const leeway = 30 * time.Second
	type issued struct {
		verifier        Verifier
		revoked, living string // two tokens with the same exp
		exp             time.Time
	}
	kinds := map[string]func(t *testing.T, clock *clocktest.Clock) issued{
		"session": func(t *testing.T, clock *clocktest.Clock) issued {
			s, err := NewSessions(SessionConfig{Keys: HMACKey(testSecret), Issuer: "tokenbroker", Audience: "tokenbroker", TTL: time.Hour, Leeway: leeway, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			revoked, exp, err := s.Issue(t.Context(), User{Username: "u", Group: "BOSTON"})
			if err != nil {
				t.Fatal(err)
			}
			living, _, err := s.Issue(t.Context(), User{Username: "u", Group: "BOSTON"})
			if err != nil {
				t.Fatal(err)
			}
			return issued{s, revoked, living, exp}
		},
		"IdP token": func(t *testing.T, clock *clocktest.Clock) issued {
			iss := idptest.New(t, "ES256")
			idp := newTestIdP(t, iss, IdPConfig{Algorithms: []string{"ES256"}, Leeway: leeway, Now: clock.Now})
			// idpClaims: iat now, exp in an hour.
			return issued{idp, iss.Sign(t, idpClaims(iss)), iss.Sign(t, idpWith(idpClaims(iss), "jti", "jti-2")), idpNow.Add(time.Hour)}
		},
	}
	for kind, issue := range kinds {
		for _, after := range []time.Duration{3 * time.Second, 28 * time.Second} {
			t.Run(kind+" at exp+"+after.String(), func(t *testing.T) {
				clock := clocktest.New()
				clock.Set(idpNow)
				tok := issue(t, clock)
				r, cache := routerOverStore(t, clock, memstore.New(memstore.Config{Now: clock.Now}), tok.verifier)
				logout(t, r, cache, tok.revoked)

				clock.Set(tok.exp.Add(after))
				if _, err := r.Authenticate(t.Context(), tok.living); err != nil {
					t.Fatalf("within the leeway an unrevoked token is accepted, but: %v", err)
				}
				_, err := r.Authenticate(t.Context(), tok.revoked)
				if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
					t.Fatalf("revoked token at exp+%s: %v, want refused as revoked", after, err)
				}
			})
		}
	}
}

// Also fix (issue 12): an IdP reached over plain http to a non-loopback host
// lets anyone on the path replace its keys; such URLs are refused.
func TestAttackPlainHTTPIdentityProvider(t *testing.T) {
	tests := []struct {
		issuer, jwks string
		bad          string // the refused URL, or "" when accepted
	}{
		{"https://sso.acme.com/realms/acme", "", ""},
		{"http://127.0.0.1:8080", "", ""},
		{"http://127.9.9.9", "", ""},
		{"http://[::1]:8080", "", ""},
		{"http://LocalHost:8080", "", ""},
		{"https://sso.acme.com", "http://localhost/jwks", ""},
		{"http://sso.acme.com/realms/acme", "", "http://sso.acme.com/realms/acme"},
		{"http://10.0.0.1", "", "http://10.0.0.1"},
		{"http://localhost.acme.com", "", "http://localhost.acme.com"},
		{"https://sso.acme.com", "http://keys.acme.com/jwks", "http://keys.acme.com/jwks"},
	}
	for _, tt := range tests {
		err := IdPConfig{Issuer: tt.issuer, JWKSURL: tt.jwks, Audience: "a"}.Validate()
		switch {
		case tt.bad == "" && err != nil:
			t.Errorf("issuer %s, JWKS %q refused: %v", tt.issuer, tt.jwks, err)
		case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), `"`+tt.bad+`" is plain http: use https`)):
			t.Errorf("issuer %s, JWKS %q: %v, want %s refused as plain http", tt.issuer, tt.jwks, err, tt.bad)
		}
	}
	// Nor may a redirect downgrade an https URL (the default client's rule).
	req, _ := http.NewRequest(http.MethodGet, "http://keys.acme.com/jwks", nil)
	if err := idpCheckRedirect(req, make([]*http.Request, 1)); err == nil {
		t.Error("a redirect to plain http was followed")
	}
}
