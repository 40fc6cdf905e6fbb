package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

func testPersistence(t *testing.T, h Harness) {
	backend := h.NewBackend(t)
	s, err := h.Open(t, backend, keyA, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	e := entry("BOSTON", "h", "tok-persisted", time.Hour)
	mustPut(t, s, e)
	until := now().Add(time.Hour)
	if err := s.RevokeSession(ctx, "s1", until); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecret(ctx, "oauth", store.Secret{Value: []byte("o"), Obtained: now(), ExpiresAt: until}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := h.Open(t, backend, keyB, time.Now); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("open with another key: %v, want ErrWrongKey", err)
	}
	s2 := open(t, h, backend)
	wantCurrent(t, s2, e.Key, &e)
	wantByToken(t, s2, "tok-persisted", &e)
	if got, _ := s2.RevokedSessions(ctx); got["s1"].UnixMilli() != until.UnixMilli() {
		t.Fatalf("revocation lost on reopen: %v", got)
	}
	if sec, ok, _ := s2.Secret(ctx, "oauth"); !ok || string(sec.Value) != "o" {
		t.Fatal("secret lost on reopen")
	}
}

func testAtRest(t *testing.T, h Harness) {
	backend := h.NewBackend(t)
	s := open(t, h, backend)
	mustPut(t, s, entry("BOSTON", "h", "TOKEN-SENTINEL-7f3a", time.Hour))
	if err := s.PutSecret(ctx, "oauth", store.Secret{Value: []byte("SECRET-SENTINEL-91bc"), ExpiresAt: now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw := h.AtRest(t, backend)
	if len(raw) == 0 {
		t.Fatal("AtRest returned nothing")
	}
	for _, sentinel := range []string{"TOKEN-SENTINEL-7f3a", "SECRET-SENTINEL-91bc"} {
		if bytes.Contains(raw, []byte(sentinel)) {
			t.Errorf("%s is stored in the clear", sentinel)
		}
	}
}
