package memstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

// An expired revocation is swept by a later write, not kept forever.
func TestSessionsPruned(t *testing.T) {
	clk := clocktest.New()
	m := New(Config{Now: clk.Now})
	ctx := context.Background()
	if err := m.RevokeSession(ctx, "s1", clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r, _ := m.RevokedSessions(ctx); len(r) != 1 || r["s1"].IsZero() {
		t.Fatalf("revoked sessions = %v, want s1", r)
	}
	clk.Advance(2 * time.Hour)
	for i := range pruneEvery {
		_ = m.RevokeSession(ctx, fmt.Sprint("x", i), clk.Now().Add(time.Hour))
	}
	m.mu.RLock()
	_, kept := m.sessions["s1"]
	m.mu.RUnlock()
	if kept {
		t.Fatal("an expired revocation was never pruned")
	}
}
