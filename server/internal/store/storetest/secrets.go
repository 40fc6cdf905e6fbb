package storetest

import (
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

func testSecrets(t *testing.T, h Harness) {
	s := fresh(t, h)
	if _, ok, err := s.Secret(ctx, "oauth"); ok || err != nil {
		t.Fatalf("empty store has a secret: %v %v", ok, err)
	}
	sec := store.Secret{Value: []byte("oauth-token-1"), Obtained: now(), ExpiresAt: now().Add(time.Hour)}
	if err := s.PutSecret(ctx, "oauth", sec); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Secret(ctx, "oauth")
	if err != nil || !ok || string(got.Value) != "oauth-token-1" || got.ExpiresAt.UnixMilli() != sec.ExpiresAt.UnixMilli() || got.Obtained.UnixMilli() != sec.Obtained.UnixMilli() {
		t.Fatalf("Secret = %+v, %v, %v", got, ok, err)
	}
	sec2 := store.Secret{Value: []byte("oauth-token-2"), Obtained: now(), ExpiresAt: now().Add(2 * time.Hour)}
	if err := s.PutSecret(ctx, "oauth", sec2); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Secret(ctx, "oauth"); string(got.Value) != "oauth-token-2" {
		t.Fatalf("after overwrite: %q", got.Value)
	}
	if err := s.PutSecret(ctx, "old", store.Secret{Value: []byte("x"), ExpiresAt: now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Secret(ctx, "old"); ok {
		t.Fatal("an expired secret is returned")
	}
}
