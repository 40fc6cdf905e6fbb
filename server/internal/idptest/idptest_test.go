package idptest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

func get(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// jwks fetches the issuer's current key set as a keyfunc, without caching.
func jwks(t *testing.T, i *Issuer) keyfunc.Keyfunc {
	t.Helper()
	var raw json.RawMessage
	if code := get(t, i.URL()+JWKSPath, &raw); code != http.StatusOK {
		t.Fatalf("GET /jwks = %d", code)
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	return kf
}

func TestIssuerSignsWhatItPublishes(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			i := New(t, alg)
			var d struct {
				Issuer  string   `json:"issuer"`
				JWKSURI string   `json:"jwks_uri"`
				Algs    []string `json:"id_token_signing_alg_values_supported"`
			}
			if code := get(t, i.URL()+DiscoveryPath, &d); code != http.StatusOK {
				t.Fatalf("discovery = %d", code)
			}
			if d.Issuer != i.URL() || d.JWKSURI != i.URL()+JWKSPath || len(d.Algs) != 1 || d.Algs[0] != alg {
				t.Fatalf("discovery = %+v", d)
			}
			exp := time.Now().Add(time.Hour).Unix()
			tok := i.Sign(t, jwt.MapClaims{"iss": i.URL(), "sub": "u", "exp": exp})
			parsed, err := jwt.Parse(tok, jwks(t, i).Keyfunc, jwt.WithValidMethods([]string{alg}), jwt.WithIssuer(i.URL()))
			if err != nil {
				t.Fatalf("own token refused: %v", err)
			}
			if parsed.Header["kid"] != i.KID() {
				t.Fatalf("kid = %v, want %s", parsed.Header["kid"], i.KID())
			}
			if n := i.JWKSRequests(); n != 1 {
				t.Fatalf("JWKSRequests = %d, want 1", n)
			}
			if !strings.HasPrefix(string(i.PublicKeyPEM()), "-----BEGIN PUBLIC KEY-----") {
				t.Fatalf("PublicKeyPEM = %q", i.PublicKeyPEM())
			}
		})
	}
}

func TestRotateRetireAndOutage(t *testing.T) {
	i := New(t, "ES256")
	claims := jwt.MapClaims{"sub": "u"}
	old := i.Sign(t, claims)
	oldKID := i.KID()
	i.Rotate(t)
	if i.KID() == oldKID {
		t.Fatal("Rotate kept the kid")
	}
	fresh := i.Sign(t, claims)
	kf := jwks(t, i)
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if _, err := jwt.Parse(tok, kf.Keyfunc); err != nil {
			t.Fatalf("%s key not published after Rotate: %v", name, err)
		}
	}
	i.Retire()
	kf = jwks(t, i)
	if _, err := jwt.Parse(old, kf.Keyfunc); err == nil {
		t.Fatal("retired key still published")
	}
	if _, err := jwt.Parse(fresh, kf.Keyfunc); err != nil {
		t.Fatalf("current key not published after Retire: %v", err)
	}

	i.SetDown(true)
	for _, p := range []string{DiscoveryPath, JWKSPath, "/anything"} {
		if code := get(t, i.URL()+p, nil); code != http.StatusServiceUnavailable {
			t.Fatalf("down: GET %s = %d, want 503", p, code)
		}
	}
	i.SetDown(false)
	if code := get(t, i.URL()+DiscoveryPath, nil); code != http.StatusOK {
		t.Fatalf("up again: discovery = %d", code)
	}
}

func TestSignWithOverridesTheHeader(t *testing.T) {
	i := New(t, "RS256")
	tok := i.SignWith(t, map[string]any{"kid": nil, "alg": "HS256", "typ": "at+jwt"}, jwt.MapClaims{"sub": "u"})
	p := jwt.NewParser()
	parsed, _, err := p.ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := parsed.Header["kid"]; ok || parsed.Header["alg"] != "HS256" || parsed.Header["typ"] != "at+jwt" {
		t.Fatalf("header = %v", parsed.Header)
	}
}

// The variants are real attacks: a lenient parser accepts them, a strict one
// refuses the non-canonical ones, and none is the token itself.
func TestSignatureVariant(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			i := New(t, alg)
			tok := i.Sign(t, jwt.MapClaims{"iss": i.URL(), "sub": "u", "exp": time.Now().Add(time.Hour).Unix()})
			variant := i.SignatureVariant(t, tok)
			if variant == tok {
				t.Fatal("the variant is the token")
			}
			kf := jwks(t, i).Keyfunc
			if _, err := jwt.Parse(variant, kf, jwt.WithValidMethods([]string{alg})); err != nil {
				t.Fatalf("a lenient parser refuses the variant: %v", err)
			}
			_, err := jwt.Parse(variant, kf, jwt.WithValidMethods([]string{alg}), jwt.WithStrictDecoding())
			if canonical := alg == "ES256"; (err == nil) != canonical {
				t.Fatalf("a strict parser: %v (the %s variant is canonical: %t)", err, alg, canonical)
			}
		})
	}
}
