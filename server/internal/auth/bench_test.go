package auth

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRouterAuthenticate: a session presented again (the hit path) and
// one seen for the first time (a full HS256 verification).
func BenchmarkRouterAuthenticate(b *testing.B) {
	s, _ := NewSessions(SessionConfig{Keys: HMACKey(testSecret), Issuer: "tokenbroker", Audience: "tokenbroker", TTL: time.Hour, Leeway: 30 * time.Second})
	revoked := RevocationsFunc(func(context.Context, string) (bool, error) { return false, nil })
	ctx := context.Background()
	tok, _, _ := s.Issue(ctx, User{Username: "user.boston@acme.com", Group: "BOSTON"})
	b.Run("seen before", func(b *testing.B) {
		r, _ := NewRouter(RouterConfig{Verifiers: []Verifier{s}, Revocations: revoked})
		_, _ = r.Authenticate(ctx, tok)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Authenticate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("first time (HS256 verify)", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
