package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

// stubVerifier accepts the token "ok" for its issuer.
type stubVerifier struct{ iss string }

func (s stubVerifier) Issuer() string { return s.iss }

func (s stubVerifier) Verify(_ context.Context, tok string) (Principal, error) {
	return Principal{Kind: KindIdP, Subject: s.iss, Group: "G", SessionID: "idp:" + s.iss}, nil
}

func TestRouterRoutesByIssuer(t *testing.T) {
	r, err := NewRouter(RouterConfig{
		Verifiers:   []Verifier{stubVerifier{"https://a.example"}, stubVerifier{"https://revoked.example"}},
		Revocations: fakeRevocations{"idp:https://revoked.example": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(iss string) string { return "e30." + b64(`{"iss":"`+iss+`"}`) + ".sig" }
	if p, err := r.Authenticate(context.Background(), tok("https://a.example")); err != nil || p.Subject != "https://a.example" {
		t.Fatalf("routed to %+v, %v", p, err)
	}
	for name, bearer := range map[string]string{
		"unknown issuer":              tok("https://b.example"),
		"no issuer":                   "e30." + b64(`{}`) + ".sig",
		"payload not JSON":            "e30." + b64(`nope`) + ".sig",
		"payload not base64":          "e30.***.sig",
		"two parts":                   "e30.e30",
		"revoked token of any issuer": tok("https://revoked.example"),
	} {
		if _, err := r.Authenticate(context.Background(), bearer); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
	}
	down, _ := NewRouter(RouterConfig{
		Verifiers:   []Verifier{stubVerifier{"https://a.example"}},
		Revocations: RevocationsFunc(func(context.Context, string) (bool, error) { return false, errors.New("store down") }),
	})
	if _, err := down.Authenticate(context.Background(), tok("https://a.example")); !errors.Is(err, ErrRevocationUnavailable) {
		t.Fatalf("revocations unreadable: %v, want ErrRevocationUnavailable (fail closed)", err)
	}
	if _, err := NewRouter(RouterConfig{Verifiers: []Verifier{stubVerifier{"x"}, stubVerifier{"x"}}}); err == nil {
		t.Fatal("two verifiers for one issuer accepted")
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// countingVerifier counts verifications and accepts every token until exp.
type countingVerifier struct {
	n   int
	exp time.Time
}

func (c *countingVerifier) Issuer() string { return "https://a.example" }

func (c *countingVerifier) Verify(_ context.Context, tok string) (Principal, error) {
	c.n++
	return Principal{Kind: KindIdP, Subject: tok, Group: "G", SessionID: "sid-" + tok, SessionExpiry: c.exp}, nil
}

func TestRouterRemembersVerifiedTokens(t *testing.T) {
	clock := clocktest.New()
	v := &countingVerifier{exp: clock.Now().Add(time.Hour)}
	revoked := map[string]bool{}
	r, err := NewRouter(RouterConfig{
		Verifiers:   []Verifier{v},
		Revocations: RevocationsFunc(func(_ context.Context, id string) (bool, error) { return revoked[id], nil }),
		Now:         clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := "e30." + b64(`{"iss":"https://a.example"}`) + ".sig"
	for range 5 {
		if _, err := r.Authenticate(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if v.n != 1 {
		t.Fatalf("%d verifications for one token presented 5 times, want 1", v.n)
	}
	// Revocation is checked on every call, cached or not.
	revoked["sid-"+tok] = true
	if _, err := r.Authenticate(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a revoked, cached token: %v", err)
	}
	revoked["sid-"+tok] = false
	// An entry lasts at most verifiedTTL, then the token is verified again.
	clock.Advance(verifiedTTL)
	_, _ = r.Authenticate(context.Background(), tok)
	if v.n != 2 {
		t.Fatalf("%d verifications after the entry's lifetime, want 2", v.n)
	}
	// Past the token's expiry the verifier decides, not the cache.
	v.exp = clock.Advance(2 * time.Hour).Add(-time.Minute)
	_, _ = r.Authenticate(context.Background(), tok)
	if v.n != 3 {
		t.Fatalf("an expired token was answered from the cache (%d verifications)", v.n)
	}
}
