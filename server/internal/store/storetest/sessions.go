package storetest

import (
	"testing"
	"time"
)

func testSessions(t *testing.T, h Harness) {
	s := fresh(t, h)
	until := now().Add(time.Hour)
	for id, u := range map[string]time.Time{"s1": until, "s-expired": now().Add(-time.Second)} {
		if err := s.RevokeSession(ctx, id, u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.RevokedSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["s1"].UnixMilli() != until.UnixMilli() {
		t.Fatalf("RevokedSessions = %v, want s1 until %v", got, until)
	}
	// Revoking again keeps the later time.
	if err := s.RevokeSession(ctx, "s1", until.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	later := until.Add(time.Hour)
	if err := s.RevokeSession(ctx, "s1", later); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.RevokedSessions(ctx); got["s1"].UnixMilli() != later.UnixMilli() {
		t.Fatalf("s1 revoked until %v, want %v", got["s1"], later)
	}
}
