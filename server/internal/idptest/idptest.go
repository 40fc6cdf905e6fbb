// Package idptest runs a real OpenID Connect issuer on a loopback httptest
// server, for tests of code that verifies an identity provider's tokens: it
// serves discovery and a JWKS over HTTP, signs tokens, rotates and retires
// keys, counts JWKS fetches and can play an outage.
package idptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Paths served by an Issuer.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/jwks"
)

// Issuer is an OIDC issuer on an httptest server: discovery at
// /.well-known/openid-configuration (issuer, jwks_uri,
// id_token_signing_alg_values_supported), keys at /jwks. It is safe for
// concurrent use.
type Issuer struct {
	srv    *httptest.Server
	alg    string
	method jwt.SigningMethod

	mu   sync.Mutex
	keys []signingKey // published keys, oldest first; the last one signs

	down         atomic.Bool
	jwksRequests atomic.Int64
}

type signingKey struct {
	kid  string
	priv crypto.Signer
}

// New starts an issuer signing with alg ("RS256", "ES256" or "EdDSA") and a
// freshly generated key. The server is closed when the test ends.
func New(t testing.TB, alg string) *Issuer {
	t.Helper()
	method := jwt.GetSigningMethod(alg)
	switch alg {
	case "RS256", "ES256", "EdDSA":
	default:
		t.Fatalf("idptest: unsupported algorithm %q (want RS256, ES256 or EdDSA)", alg)
	}
	i := &Issuer{alg: alg, method: method}
	i.keys = []signingKey{i.newKey(t)}
	i.srv = httptest.NewServer(http.HandlerFunc(i.serve))
	t.Cleanup(i.srv.Close)
	return i
}

// URL is the issuer URL: the base of its endpoints and the iss it signs.
func (i *Issuer) URL() string { return i.srv.URL }

// Sign signs claims with the current key, with the kid header set. It does
// not add any claim: the test says exactly what the token carries.
func (i *Issuer) Sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	return i.SignWith(t, nil, claims)
}

// SignWith is Sign with header fields overridden, for attack tests: a nil
// value removes the field (e.g. "kid": nil for a token without kid), any
// other value replaces it. The signature is always made with the current
// key's algorithm, whatever "alg" the header claims.
func (i *Issuer) SignWith(t testing.TB, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	k := i.current()
	tok := jwt.NewWithClaims(i.method, claims)
	tok.Header["kid"] = k.kid
	for name, v := range header {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatalf("idptest: sign: %v", err)
	}
	return s
}

// Rotate makes a new key current. Older keys stay published until Retire,
// as an IdP does while tokens signed with them are still alive.
func (i *Issuer) Rotate(t testing.TB) {
	t.Helper()
	k := i.newKey(t)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append(i.keys, k)
}

// Retire stops publishing every key but the current one.
func (i *Issuer) Retire() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = i.keys[len(i.keys)-1:]
}

// KID is the key id of the current key.
func (i *Issuer) KID() string { return i.current().kid }

// JWKSRequests counts the fetches of /jwks so far (outages included).
func (i *Issuer) JWKSRequests() int64 { return i.jwksRequests.Load() }

// PublicKeyPEM returns the current public key as a PKIX "PUBLIC KEY" PEM
// block: what an attacker would use as an HMAC secret in a key-confusion
// attack.
func (i *Issuer) PublicKeyPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(i.current().priv.Public())
	if err != nil {
		panic("idptest: marshal public key: " + err.Error()) // cannot happen for keys New generates
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// SignatureVariant returns token with its signature re-encoded as an
// attacker replaying a revoked token would: a different string whose
// signature still verifies (ES256: s replaced by n−s, since ECDSA signatures
// are malleable) or that a lenient base64url decoder reads as the same bytes
// (RS256, EdDSA: see NonCanonical). A verifier must refuse it or treat it as
// the same token.
func (i *Issuer) SignatureVariant(t testing.TB, token string) string {
	t.Helper()
	if i.alg != "ES256" {
		return NonCanonical(t, token)
	}
	dot := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("idptest: not an ES256 signature (%d bytes, %v)", len(sig), err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	sig = append(sig[:32:32], s.FillBytes(make([]byte, 32))...)
	return token[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// NonCanonical returns token (any JWT) with the unused low bits of its
// signature's last base64url character set: the same bytes to a lenient
// decoder, a different string. Canonical encoding leaves those bits zero.
func NonCanonical(t testing.TB, token string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if n := len(token) - strings.LastIndexByte(token, '.') - 1; n == 0 || n*6%8 == 0 {
		t.Fatal("idptest: the signature's encoding has no unused bits")
	}
	c := strings.IndexByte(alphabet, token[len(token)-1])
	if c < 0 {
		t.Fatal("idptest: the token does not end in base64url")
	}
	return token[:len(token)-1] + string(alphabet[c|1])
}

// SetDown makes every path answer 503 (an IdP outage) until SetDown(false).
func (i *Issuer) SetDown(down bool) { i.down.Store(down) }

func (i *Issuer) current() signingKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[len(i.keys)-1]
}

func (i *Issuer) newKey(t testing.TB) signingKey {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch i.alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatalf("idptest: generate %s key: %v", i.alg, err)
	}
	// Random kids, so two issuers in one test never share one.
	return signingKey{kid: rand.Text()[:16], priv: priv}
}

func (i *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == JWKSPath {
		i.jwksRequests.Add(1)
	}
	if i.down.Load() {
		http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case DiscoveryPath:
		writeJSON(w, map[string]any{
			"issuer":                                i.URL(),
			"jwks_uri":                              i.URL() + JWKSPath,
			"authorization_endpoint":                i.URL() + "/authorize",
			"token_endpoint":                        i.URL() + "/token",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{i.alg},
		})
	case JWKSPath:
		i.mu.Lock()
		keys := make([]map[string]any, 0, len(i.keys))
		for _, k := range i.keys {
			keys = append(keys, i.jwk(k))
		}
		i.mu.Unlock()
		writeJSON(w, map[string]any{"keys": keys})
	default:
		http.NotFound(w, r)
	}
}

// jwk encodes a public key by hand (RFC 7517/7518/8037) rather than with the
// JWKS library under test, so the two cannot share a bug unnoticed.
func (i *Issuer) jwk(k signingKey) map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"kid": k.kid, "use": "sig", "alg": i.alg}
	switch pub := k.priv.Public().(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64(pub.N.Bytes())
		m["e"] = b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes() // 0x04 || X || Y, each coordinate full width
		if err != nil {
			panic("idptest: encode EC key: " + err.Error())
		}
		m["kty"] = "EC"
		m["crv"] = "P-256"
		m["x"] = b64(raw[1:33])
		m["y"] = b64(raw[33:])
	case ed25519.PublicKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = b64(pub)
	}
	return m
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v) // the client sees a broken body if this fails
}
