package auth

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
)

// signedByIdP reports whether tok is an RS256 JWS whose signature verifies
// with pub, checked independently of the verifier (RFC 7515 §5.2 and RFC 7518
// §3.3: RSASSA-PKCS1-v1_5 with SHA-256 over the first two parts).
func signedByIdP(pub *rsa.PublicKey, tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var header struct{ Alg string }
	if json.Unmarshal(rawHeader, &header) != nil || header.Alg != "RS256" {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
}

// FuzzIdPVerify: no token string, however malformed, makes the IdP verifier
// panic, and none is accepted unless it really is signed with the IdP's key
// (checked here independently, with the public key the IdP publishes) and
// names the IdP's issuer and audience. Seeds are the review's forgeries.
func FuzzIdPVerify(f *testing.F) {
	iss := idptest.New(f, "RS256")
	block, _ := pem.Decode(iss.PublicKeyPEM())
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		f.Fatal(err)
	}
	pub := key.(*rsa.PublicKey)
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	p, err := NewIdP(ctx, IdPConfig{
		Issuer: iss.URL(), Audience: idpAudience, Now: func() time.Time { return idpNow },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}

	valid := iss.Sign(f, idpClaims(iss))
	parts := strings.Split(valid, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, idpClaims(iss))
	confused.Header["kid"] = iss.KID()
	confusedTok, err := confused.SignedString(iss.PublicKeyPEM())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		valid,
		iss.Sign(f, idpWithout(idpClaims(iss), "jti")),
		iss.Sign(f, idpWith(idpClaims(iss), "aud", "another-client")),
		iss.Sign(f, idpWith(idpClaims(iss), "groups", map[string]any{"a": []any{1, nil}})),
		iss.SignWith(f, map[string]any{"kid": "../../etc/passwd"}, idpClaims(iss)),
		iss.SignWith(f, map[string]any{"jku": "http://127.0.0.1:1/jwks"}, idpClaims(iss)),
		b64([]byte(fmt.Sprintf(`{"alg":"none","kid":%q}`, iss.KID()))) + "." + parts[1] + ".",
		b64([]byte(`{"alg":"NONE"}`)) + "." + parts[1] + "." + parts[2],
		confusedTok,
		parts[0] + "." + b64([]byte(`{"iss":"`+iss.URL()+`","aud":"`+idpAudience+`","sub":"x","groups":"NEW YORK","exp":9999999999}`)) + "." + parts[2],
		valid + "A", "a.b.c", "..", "e30.e30.", "\x00.\xff.\x80", parts[0] + "." + parts[1],
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		got, err := p.Verify(context.Background(), token)
		if err != nil {
			return
		}
		if !signedByIdP(pub, token) {
			t.Fatalf("accepted a token the IdP did not sign: %q -> %+v", token, got)
		}
		claims := jwt.MapClaims{}
		if _, _, perr := jwt.NewParser().ParseUnverified(token, claims); perr != nil {
			t.Fatalf("accepted an unparsable token %q: %v", token, perr)
		}
		aud, _ := claims.GetAudience()
		if claims["iss"] != iss.URL() || !slices.Contains(aud, idpAudience) || got.Subject == "" || got.Group == "" {
			t.Fatalf("accepted %q with claims %v as %+v", token, claims, got)
		}
	})
}
