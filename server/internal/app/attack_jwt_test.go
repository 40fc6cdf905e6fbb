package app_test

// Attacks on the bearer token: forged, altered or borrowed JWTs, sessions and
// company IdP tokens alike. Each test first shows that every forgery is
// refused on every authenticated route, then that nothing was minted, then
// that the genuine token of the same shape is accepted, so the refusals are
// about the forgery and not about the test's setup.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
)

// idpAudience is the audience the attack tests' IdPs are configured with.
const idpAudience = "tokenbroker-api"

// idpAlg is a company IdP and the algorithm the broker accepts from it.
type idpAlg struct {
	idp *idptest.Issuer
	alg string
}

// withIdPs is testConfig (users and policies) plus the given company IdPs,
// each with the default "groups" claim.
func withIdPs(idps ...idpAlg) string {
	cfg := testConfig + "identity_providers:\n"
	for i, p := range idps {
		cfg += fmt.Sprintf("  - {name: idp%d, issuer: %q, audience: %s, algorithms: [%s]}\n", i, p.idp.URL(), idpAudience, p.alg)
	}
	return cfg
}

// sessionClaims are the claims of a valid Boston session, as the broker
// issues them.
func sessionClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": "tokenbroker", "aud": "tokenbroker", "sub": "user.boston@acme.com", "group": "BOSTON",
		"jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// idpClaims are the claims of a valid Boston token of the company IdP.
func idpClaims(idp *idptest.Issuer) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": idp.URL(), "aud": idpAudience, "sub": "alice", "groups": []string{"BOSTON"},
		"jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// with returns c with k set to v (deleted when v is nil).
func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	if v == nil {
		delete(c, k)
	} else {
		c[k] = v
	}
	return c
}

// signJWT signs claims as anyone can: any method, any key, extra headers.
func signJWT(t *testing.T, m jwt.SigningMethod, key any, header map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hs256Session signs a session with the broker's JWT_SECRET.
func hs256Session(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	return signJWT(t, jwt.SigningMethodHS256, []byte(jwtSecret), nil, c)
}

// b64JSON is the base64url JSON of v: a JWT header or payload.
func b64JSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// jwtPart decodes part i (0 header, 1 payload) of a JWT.
func jwtPart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// refuses asserts that an Authorization value gets nowhere: 401 with an RFC
// 6750 challenge and an UNAUTHENTICATED body on every authenticated REST
// route, UNAUTHENTICATED over gRPC. An empty value sends no header.
func (b *broker) refuses(t *testing.T, authorization string) {
	t.Helper()
	hdr := http.Header{}
	ctx := context.Background()
	if authorization != "" {
		hdr.Set("Authorization", authorization)
		ctx = withRawAuthorization(authorization)
	}
	for _, path := range []string{"/carto-token", "/v1/carto-token", "/v1/revoke"} {
		resp := b.do(http.MethodPost, path, "", `{"session":true}`, hdr)
		body := decode(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || body["code"] != float64(codes.Unauthenticated) || body["message"] == "" {
			t.Fatalf("%s: %d %v, want 401 UNAUTHENTICATED", path, resp.StatusCode, body)
		}
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s: WWW-Authenticate %q", path, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if _, err := b.grpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC: %v, want UNAUTHENTICATED", err)
	}
}

// refusesAll runs refuses for each named bearer token, then checks that
// CARTO was asked for nothing.
func (b *broker) refusesAll(t *testing.T, tokens map[string]string) {
	t.Helper()
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) { b.refuses(t, "Bearer "+tok) })
	}
	if s := b.sim.Stats(); s.TokensCreated != 0 {
		t.Fatalf("refused callers caused %d CARTO token creations", s.TokensCreated)
	}
}

// accepts asserts that a genuine bearer obtains a CARTO token.
func (b *broker) accepts(t *testing.T, token string) {
	t.Helper()
	if code, body := b.post("/carto-token", token, ""); code != http.StatusOK {
		t.Fatalf("the genuine token was refused: %d %v", code, body)
	}
}

// Attack: a bearer that is missing, not a JWT, of another scheme, or signed
// with a secret that is not the broker's. Each must be refused with 401 /
// UNAUTHENTICATED and cause no work.
func TestAttackMalformedOrForeignBearer(t *testing.T) {
	b := startBroker(t)
	for name, authorization := range map[string]string{
		"missing":        "",
		"garbled":        "Bearer garbage.not.jwt",
		"no token":       "Bearer ",
		"basic scheme":   "Basic dXNlcjpwYXNz",
		"wrongly signed": "Bearer " + signJWT(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-0123"), nil, sessionClaims()),
	} {
		t.Run(name, func(t *testing.T) { b.refuses(t, authorization) })
	}
	b.refusesAll(t, nil)
	b.accepts(t, hs256Session(t, sessionClaims()))
}

// Attack: alg "none" (and "NONE", "None", "nOnE") with the signature dropped
// or kept, as a session and as a company IdP token (RFC 8725 §2.1). Each must
// be refused: no token is ever accepted without a signature.
func TestAttackAlgNone(t *testing.T) {
	idp := idptest.New(t, "RS256")
	b := startBroker(t, brokertest.Config(withIdPs(idpAlg{idp, "RS256"})))
	session, idpTok := hs256Session(t, sessionClaims()), idp.Sign(t, idpClaims(idp))
	forged := map[string]string{}
	for _, alg := range []string{"none", "NONE", "None", "nOnE"} {
		for kind, tok := range map[string]string{"session": session, "IdP token": idpTok} {
			header := jwtPart(t, tok, 0)
			header["alg"] = alg
			parts := strings.Split(tok, ".")
			unsigned := b64JSON(t, header) + "." + parts[1]
			forged[kind+" alg "+alg+", no signature"] = unsigned + "."
			forged[kind+" alg "+alg+", signature kept"] = unsigned + "." + parts[2]
		}
	}
	// The library's own none signer, as a careless verifier would accept it.
	forged["session signed by jwt's none method"] = signJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, sessionClaims())
	b.refusesAll(t, forged)
	b.accepts(t, session)
	b.accepts(t, idpTok)
}

// Attack: key confusion (RFC 8725 §2.1): HS256 tokens whose HMAC secret is a
// public key the attacker can read: the company IdP's RSA and EC keys (PEM
// and DER), and the broker's own session keys published in its JWKS (as PEM,
// DER, raw bytes, the JWK and the whole JWKS document), with the real kid.
// Also a session signed with JWT_SECRET once sessions are asymmetric (a
// downgrade to the shared secret). All must be refused.
func TestAttackKeyConfusion(t *testing.T) {
	t.Run("company IdP keys", func(t *testing.T) {
		rsaIdP, ecIdP := idptest.New(t, "RS256"), idptest.New(t, "ES256")
		b := startBroker(t, brokertest.Config(withIdPs(idpAlg{rsaIdP, "RS256"}, idpAlg{ecIdP, "ES256"})))
		forged := map[string]string{}
		for name, idp := range map[string]*idptest.Issuer{"RSA": rsaIdP, "EC": ecIdP} {
			pemKey := idp.PublicKeyPEM()
			block, _ := pem.Decode(pemKey)
			for form, secret := range map[string][]byte{"PEM": pemKey, "DER": block.Bytes} {
				forged["HS256 keyed with the IdP's "+name+" public key as "+form] =
					signJWT(t, jwt.SigningMethodHS256, secret, map[string]any{"kid": idp.KID()}, idpClaims(idp))
			}
		}
		b.refusesAll(t, forged)
		b.accepts(t, rsaIdP.Sign(t, idpClaims(rsaIdP)))
		b.accepts(t, ecIdP.Sign(t, idpClaims(ecIdP)))
	})
	for _, alg := range []string{"ES256", "EdDSA"} {
		t.Run("session keys "+alg, func(t *testing.T) {
			b := startBroker(t, brokertest.Env(map[string]string{"SESSION_SIGNING_ALG": alg}))
			resp := b.do(http.MethodGet, "/.well-known/jwks.json", "", "", nil)
			doc, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("JWKS: %d %v", resp.StatusCode, err)
			}
			var set struct{ Keys []map[string]any }
			if err := json.Unmarshal(doc, &set); err != nil || len(set.Keys) == 0 {
				t.Fatalf("JWKS %s: %v", doc, err)
			}
			jwk := set.Keys[0]
			jwkJSON, _ := json.Marshal(jwk)
			x, _ := base64.RawURLEncoding.DecodeString(jwk["x"].(string))
			var pub any = ed25519.PublicKey(x)
			if alg == "ES256" {
				y, _ := base64.RawURLEncoding.DecodeString(jwk["y"].(string))
				pub = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
			}
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			forged := map[string]string{
				"HS256 signed with JWT_SECRET": hs256Session(t, sessionClaims()),
			}
			for form, secret := range map[string][]byte{
				"PEM": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), "DER": der,
				"x": x, "JWK": jwkJSON, "JWKS document": doc,
			} {
				forged["HS256 keyed with the session public key as "+form] =
					signJWT(t, jwt.SigningMethodHS256, secret, map[string]any{"kid": jwk["kid"]}, sessionClaims())
			}
			b.refusesAll(t, forged)
			b.accepts(t, b.login("user.boston@acme.com", "boston"))
		})
	}
}

// Attack: JOSE header injection. A kid that is a path, a URL, SQL or 10 kB
// long (on a token genuinely signed by the IdP), and jku / x5u headers that
// point at the attacker's own JWKS and certificate, on tokens signed with
// the attacker's key. All must be refused, and the attacker's server must
// never be contacted: keys only ever come from the configured IdP.
func TestAttackJOSEHeaderInjection(t *testing.T) {
	attackerKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var contacted atomic.Int64
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		contacted.Add(1)
		b64 := base64.RawURLEncoding.EncodeToString
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"keys":[{"kty":"RSA","kid":"attacker","alg":"RS256","use":"sig","n":%q,"e":%q}]}`,
			b64(attackerKey.N.Bytes()), b64(big.NewInt(int64(attackerKey.E)).Bytes()))
	}))
	defer spy.Close()

	idp := idptest.New(t, "RS256")
	b := startBroker(t, brokertest.Config(withIdPs(idpAlg{idp, "RS256"})), brokertest.Env(map[string]string{"SESSION_SIGNING_ALG": "ES256"}))

	forged := map[string]string{}
	for name, kid := range map[string]string{
		"path":  "../../../../etc/passwd",
		"URL":   spy.URL + "/jwks",
		"SQL":   "' OR 1=1 --",
		"10 kB": strings.Repeat("k", 10_000),
	} {
		forged["IdP-signed, kid "+name] = idp.SignWith(t, map[string]any{"kid": kid}, idpClaims(idp))
	}
	for name, header := range map[string]map[string]any{
		"jku":                      {"jku": spy.URL + "/jwks", "kid": "attacker"},
		"x5u":                      {"x5u": spy.URL + "/cert.pem", "kid": "attacker"},
		"jku, kid of the real key": {"jku": spy.URL + "/jwks", "kid": idp.KID()},
	} {
		forged["IdP claims, "+name] = signJWT(t, jwt.SigningMethodRS256, attackerKey, header, idpClaims(idp))
		forged["session claims, "+name] = signJWT(t, jwt.SigningMethodRS256, attackerKey, header, sessionClaims())
	}
	b.refusesAll(t, forged)
	if n := contacted.Load(); n != 0 {
		t.Fatalf("the broker fetched from the attacker's server %d times", n)
	}
	b.accepts(t, idp.Sign(t, idpClaims(idp)))
	b.accepts(t, b.login("user.boston@acme.com", "boston"))
}

// Attack: tampered claims. A genuine session or IdP token whose payload is
// rewritten (another group, another user, admin added) with its signature
// kept. Each must be refused.
func TestAttackTamperedClaims(t *testing.T) {
	idp := idptest.New(t, "RS256")
	b := startBroker(t, brokertest.Config(withIdPs(idpAlg{idp, "RS256"})))
	session, idpTok := b.login("user.boston@acme.com", "boston"), idp.Sign(t, idpClaims(idp))
	tamper := func(tok, k string, v any) string {
		payload := jwtPart(t, tok, 1)
		payload[k] = v
		parts := strings.Split(tok, ".")
		return parts[0] + "." + b64JSON(t, payload) + "." + parts[2]
	}
	b.refusesAll(t, map[string]string{
		"session, group changed":     tamper(session, "group", "NEW YORK"),
		"session, user changed":      tamper(session, "sub", "user.ny@acme.com"),
		"session, admin added":       tamper(session, "admin", true),
		"session, expiry extended":   tamper(session, "exp", time.Now().Add(24*365*time.Hour).Unix()),
		"IdP token, group changed":   tamper(idpTok, "groups", []string{"NEW YORK"}),
		"IdP token, subject changed": tamper(idpTok, "sub", "bob"),
	})
	b.accepts(t, session)
	b.accepts(t, idpTok)
}

// Attack: a token out of its lifetime: expired, not valid before (nbf) or
// issued (iat) in the future, each beyond the 30 s clock-skew leeway, as a
// session and as an IdP token, all genuinely signed. Each must be refused.
func TestAttackTokenOutsideItsLifetime(t *testing.T) {
	idp := idptest.New(t, "RS256")
	b := startBroker(t, brokertest.Config(withIdPs(idpAlg{idp, "RS256"})))
	now := time.Now()
	forged := map[string]string{}
	for name, claim := range map[string]struct {
		k string
		v int64
	}{
		"expired":          {"exp", now.Add(-2 * time.Minute).Unix()},
		"nbf in 2 minutes": {"nbf", now.Add(2 * time.Minute).Unix()},
		"iat in 2 minutes": {"iat", now.Add(2 * time.Minute).Unix()},
	} {
		forged["session "+name] = hs256Session(t, with(sessionClaims(), claim.k, claim.v))
		forged["IdP token "+name] = idp.Sign(t, with(idpClaims(idp), claim.k, claim.v))
	}
	b.refusesAll(t, forged)
	b.accepts(t, hs256Session(t, sessionClaims()))
	b.accepts(t, idp.Sign(t, idpClaims(idp)))
}

// Attack: a genuinely signed token meant for someone else: another issuer,
// another audience (as a string, or an array holding only other values), or
// no audience; a session's claims naming the IdP as issuer and an IdP token
// naming the broker (so the other verifier, with other keys, would pick it).
// Each must be refused.
func TestAttackWrongIssuerOrAudience(t *testing.T) {
	idp, other := idptest.New(t, "RS256"), idptest.New(t, "RS256")
	b := startBroker(t, brokertest.Config(withIdPs(idpAlg{idp, "RS256"})))
	b.refusesAll(t, map[string]string{
		"session, iss of another service":     hs256Session(t, with(sessionClaims(), "iss", "another-service")),
		"session, iss of the IdP":             hs256Session(t, with(sessionClaims(), "iss", idp.URL())),
		"session, aud of another service":     hs256Session(t, with(sessionClaims(), "aud", "another-service")),
		"session, aud array without broker":   hs256Session(t, with(sessionClaims(), "aud", []string{"another-service", "tokenbroker-api"})),
		"session, no aud":                     hs256Session(t, with(sessionClaims(), "aud", nil)),
		"IdP token, iss of another IdP":       idp.Sign(t, with(idpClaims(idp), "iss", other.URL())),
		"IdP token, iss of the broker":        idp.Sign(t, with(idpClaims(idp), "iss", "tokenbroker")),
		"IdP token, aud of another client":    idp.Sign(t, with(idpClaims(idp), "aud", "other-app")),
		"IdP token, aud array without broker": idp.Sign(t, with(idpClaims(idp), "aud", []string{"other-app", "tokenbroker"})),
		"IdP token, no aud":                   idp.Sign(t, with(idpClaims(idp), "aud", nil)),
		"another IdP's own token":             other.Sign(t, idpClaims(other)),
	})
	b.accepts(t, hs256Session(t, with(sessionClaims(), "aud", []string{"another-service", "tokenbroker"})))
	b.accepts(t, idp.Sign(t, with(idpClaims(idp), "aud", []string{"other-app", idpAudience})))
}

// Attack: the CARTO API token the broker hands out (a JWT too) presented to
// the broker as a session, to mint or revoke with it. It must be refused.
func TestAttackCartoTokenAsSession(t *testing.T) {
	b := startBroker(t)
	code, body := b.post("/carto-token", b.login("user.boston@acme.com", "boston"), "")
	if code != http.StatusOK {
		t.Fatalf("carto-token: %d %v", code, body)
	}
	b.refuses(t, "Bearer "+body["token"].(string))
	if s := b.sim.Stats(); s.TokensCreated != 1 {
		t.Fatalf("%d CARTO tokens created, want only the first one", s.TokensCreated)
	}
}
