package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
)

// stubVerifier accepts the token "ok" for its issuer.
type stubVerifier struct{ iss string }

func (s stubVerifier) Issuer() string { return s.iss }

func (s stubVerifier) Verify(_ context.Context, tok string) (Principal, error) {
	return Principal{Kind: KindIdP, Subject: s.iss, Group: "G", SessionID: "idp:" + s.iss}, nil
}

func TestRouterRoutesByIssuer(t *testing.T) {
	r, err := NewRouter(fakeRevocations{"idp:https://revoked.example": true}, stubVerifier{"https://a.example"}, stubVerifier{"https://revoked.example"})
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
	down, _ := NewRouter(RevocationsFunc(func(context.Context, string) (bool, error) { return false, errors.New("store down") }), stubVerifier{"https://a.example"})
	if _, err := down.Authenticate(context.Background(), tok("https://a.example")); !errors.Is(err, ErrRevocationUnavailable) {
		t.Fatalf("revocations unreadable: %v, want ErrRevocationUnavailable (fail closed)", err)
	}
	if _, err := NewRouter(nil, stubVerifier{"x"}, stubVerifier{"x"}); err == nil {
		t.Fatal("two verifiers for one issuer accepted")
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
