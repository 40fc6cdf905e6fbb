package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func signedWithSecret(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	return err == nil && hmac.Equal(sig, mac.Sum(nil))
}

// FuzzRouterAuthenticate: no bearer string, however malformed, makes the
// router panic, and none is accepted unless it really is signed with the
// broker's secret (checked here independently: HMAC-SHA256 of its first two
// parts, as RFC 7515 defines it).
func FuzzRouterAuthenticate(f *testing.F) {
	now := time.Now()
	s, err := NewSessions(SessionConfig{Keys: HMACKey(testSecret), Issuer: "tokenbroker", Audience: "tokenbroker", TTL: time.Hour, Leeway: 30 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	r, err := NewRouter(RouterConfig{Verifiers: []Verifier{s}})
	if err != nil {
		f.Fatal(err)
	}
	valid, _, err := s.Issue(context.Background(), User{Username: "u", Group: "G"})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		valid, valid + "x", "a.b.c", "..", "e30.e30.", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ0b2tlbmJyb2tlciJ9.",
		"eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOnsiYSI6MX19.x", "eyJhbGciOiJIUzI1NiJ9.bnVsbA.x", "\x00.\xff.\x80",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, bearer string) {
		p, err := r.Authenticate(context.Background(), bearer)
		if err == nil && !signedWithSecret(bearer) {
			t.Fatalf("accepted a bearer not signed with the secret: %q -> %+v", bearer, p)
		}
	})
}
