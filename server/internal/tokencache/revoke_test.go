package tokencache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

func TestRevoke(t *testing.T) {
	up := &fakeUpstream{}
	clk := clocktest.New()
	st := memstore.New(memstore.Config{Now: clk.Now})
	c := newTestCache(t, up, clk, st)
	ctx := context.Background()
	b, _, _ := c.Get(ctx, boston, time.Hour)
	ny, _, _ := c.Get(ctx, store.Key{Group: "NEW YORK", PolicyHash: boston.PolicyHash}, time.Hour)

	for name, tc := range map[string]struct{ group, token string }{
		"another group's token": {"BOSTON", ny.Token},
		"unknown token":         {"BOSTON", "no-such-token"},
	} {
		if _, err := c.Revoke(ctx, tc.token, only(tc.group)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
	if up.deletes.Load() != 0 {
		t.Fatal("a refused revocation deleted something upstream")
	}

	up.failDelete.Store(true)
	if _, err := c.Revoke(ctx, b.Token, only("BOSTON")); !errors.Is(err, errUpstream) {
		t.Fatalf("upstream failure: err = %v", err)
	}
	if cur, _, _ := c.Get(ctx, boston, time.Hour); cur.Token != b.Token {
		t.Fatal("a token whose upstream delete failed is no longer served")
	}
	up.failDelete.Store(false)
	if _, err := c.Revoke(ctx, b.Token, only("BOSTON")); err != nil {
		t.Fatal(err)
	}
	next, minted, _ := c.Get(ctx, boston, time.Hour)
	if !minted || next.Token == b.Token {
		t.Fatalf("after revoke got %q minted=%v", next.Token, minted)
	}
	if _, err := c.Revoke(ctx, b.Token, only("BOSTON")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
}
