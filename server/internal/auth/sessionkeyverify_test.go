package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

// rkJWKS parses a JWKS with the standard library alone, as a service
// verifying sessions would.
func rkJWKS(t *testing.T, k *RotatingKeys) (raw []map[string]any, keys map[string]any) {
	t.Helper()
	doc, err := k.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	keys = map[string]any{}
	for _, j := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := j[private]; ok {
				t.Fatalf("JWK has private member %q", private)
			}
		}
		if j["use"] != "sig" {
			t.Fatalf("JWK use = %v", j["use"])
		}
		coord := func(name string) []byte {
			s, _ := j[name].(string)
			b, err := base64.RawURLEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("JWK %s: %v", name, err)
			}
			return b
		}
		kid, _ := j["kid"].(string)
		switch {
		case j["kty"] == "OKP" && j["crv"] == "Ed25519" && j["alg"] == "EdDSA":
			x := coord("x")
			if len(x) != ed25519.PublicKeySize {
				t.Fatalf("Ed25519 x is %d bytes", len(x))
			}
			keys[kid] = ed25519.PublicKey(x)
		case j["kty"] == "EC" && j["crv"] == "P-256" && j["alg"] == "ES256":
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, coord("x")...), coord("y")...))
			if err != nil {
				t.Fatal(err)
			}
			keys[kid] = pub
		default:
			t.Fatalf("unexpected JWK %v", j)
		}
	}
	return set.Keys, keys
}

func TestRotatingKeysJWKS(t *testing.T) {
	for _, alg := range rkAlgorithms {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			clock := clocktest.New()
			store := newRKStore(clock)
			keys := newRK(t, alg, store, clock, nil)
			s := newRKSessions(t, keys, clock, time.Hour)
			raw, pubs := rkJWKS(t, keys)
			oldKID := rkKID(t, keys)
			if len(raw) != 1 || pubs[oldKID] == nil {
				t.Fatalf("JWKS = %v", raw)
			}
			_, stored := rkStored(t, store)
			if doc, _ := keys.JWKS(ctx); strings.Contains(string(doc), "pkcs8") || len(doc) >= len(stored) {
				t.Fatalf("JWKS looks like the stored set: %s", doc)
			}

			// A service verifies a session with the published key alone.
			verify := func(tok string, pubs map[string]any) error {
				_, err := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithAudience("tokenbroker"), jwt.WithIssuer("tokenbroker"), jwt.WithTimeFunc(clock.Now)).
					Parse(tok, func(t *jwt.Token) (any, error) {
						kid, _ := t.Header["kid"].(string)
						if k, ok := pubs[kid]; ok {
							return k, nil
						}
						return nil, errors.New("unknown kid")
					})
				return err
			}
			oldTok := rkIssue(t, s)
			if err := verify(oldTok, pubs); err != nil {
				t.Fatalf("published key refuses a session: %v", err)
			}

			clock.Advance(24 * time.Hour)
			if err := keys.rotateIfDue(ctx); err != nil {
				t.Fatal(err)
			}
			newTok := rkIssue(t, s)
			raw, pubs = rkJWKS(t, keys)
			if len(raw) != 2 || raw[0]["kid"] != rkKID(t, keys) || raw[1]["kid"] != oldKID {
				t.Fatalf("JWKS after rotation = %v, want newest first and the old key", raw)
			}
			if err := verify(newTok, pubs); err != nil {
				t.Fatalf("published key refuses a new session: %v", err)
			}

			clock.Advance(25 * time.Hour)
			raw, pubs = rkJWKS(t, keys)
			if len(raw) != 1 || pubs[oldKID] != nil {
				t.Fatalf("JWKS after Retain = %v, want the old key gone", raw)
			}
		})
	}
}

// TestRotatingKeysRefuse presents forged sessions, then asks the key source
// directly for keys that must not exist.
func TestRotatingKeysRefuse(t *testing.T) {
	for _, alg := range rkAlgorithms {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			clock := clocktest.New()
			keys := newRK(t, alg, newRKStore(clock), clock, nil)
			s := newRKSessions(t, keys, clock, time.Hour)
			kid := rkKID(t, keys)
			other := "ES256"
			if alg == "ES256" {
				other = "EdDSA"
			}
			good := rkIssue(t, s)
			for _, tt := range rkForgeries(t, keys, alg, other, good, clock.Now()) {
				t.Run(tt.name, func(t *testing.T) {
					if _, err := s.Verify(ctx, tt.token); !errors.Is(err, ErrUnauthenticated) {
						t.Fatalf("Verify = %v, want ErrUnauthenticated", err)
					}
				})
			}
			if _, err := s.Verify(ctx, good); err != nil {
				t.Fatalf("a good session is refused: %v", err)
			}

			// The key source itself, were another parser less strict.
			for _, c := range []struct{ kid, alg string }{{kid, "HS256"}, {kid, other}, {kid, "none"}, {"", alg}, {"unknown", alg}} {
				if k, err := keys.VerificationKey(ctx, c.kid, c.alg); err == nil {
					t.Fatalf("VerificationKey(%q, %q) = %T", c.kid, c.alg, k)
				}
			}
		})
	}
}

// rkForgeries are the sessions an attacker could make knowing the published
// keys of keys (whose algorithm is alg, other being the other one) and a good
// session: key confusion, alg none, and foreign keys under a kid or none.
func rkForgeries(t *testing.T, keys *RotatingKeys, alg, other, good string, now time.Time) []struct{ name, token string } {
	t.Helper()
	kid := rkKID(t, keys)
	jwks, err := keys.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := rkJWKS(t, keys)
	x, _ := base64.RawURLEncoding.DecodeString(raw[0]["x"].(string))
	publicBytes := x
	if y, ok := raw[0]["y"].(string); ok {
		yb, _ := base64.RawURLEncoding.DecodeString(y)
		publicBytes = append(append([]byte{4}, x...), yb...)
	}

	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign := map[string]struct {
		method jwt.SigningMethod
		key    any
	}{
		"EdDSA": {jwt.SigningMethodEdDSA, edKey},
		"ES256": {jwt.SigningMethodES256, ecKey},
	}
	claims := jwt.MapClaims{
		"iss": "tokenbroker", "aud": []string{"tokenbroker"}, "sub": "u", "group": "BOSTON",
		"jti": "id-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	signKID := func(method jwt.SigningMethod, key any, kid string) string {
		tok := jwt.NewWithClaims(method, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		out, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	b64 := base64.RawURLEncoding.EncodeToString
	parts := strings.Split(good, ".")
	return []struct{ name, token string }{
		{"HS256 with the public key as secret", signKID(jwt.SigningMethodHS256, publicBytes, kid)},
		{"HS256 with the JWKS as secret", signKID(jwt.SigningMethodHS256, jwks, kid)},
		{"HS256 with the public key and no kid", signKID(jwt.SigningMethodHS256, publicBytes, "")},
		{"alg none", b64([]byte(`{"alg":"none","kid":"`+kid+`","typ":"JWT"}`)) + "." + parts[1] + "."},
		{"alg none signed by library", signKID(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid)},
		{"unknown kid", signKID(foreign[alg].method, foreign[alg].key, b64([]byte("0123456789abcdef")))},
		{"no kid", signKID(foreign[alg].method, foreign[alg].key, "")},
		{"right kid, foreign key", signKID(foreign[alg].method, foreign[alg].key, kid)},
		{"right kid, wrong alg", signKID(foreign[other].method, foreign[other].key, kid)},
	}
}
