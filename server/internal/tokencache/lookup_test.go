package tokencache

import (
	"context"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

func TestLookup(t *testing.T) {
	up := &fakeUpstream{}
	clk := clocktest.New()
	st := memstore.New(memstore.Config{Now: clk.Now})
	c := newTestCache(t, up, clk, st)
	ctx := context.Background()
	b, _, err := c.Get(ctx, boston, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	held := func() string { return b.Token }
	steps := []struct {
		name  string
		do    func()
		token func() string
		found bool
	}{
		{name: "held", token: held, found: true},
		{name: "unknown", token: func() string { return "no-such-token" }},
		{name: "empty", token: func() string { return "" }},
		{name: "revoked", do: func() {
			if _, err := c.Revoke(ctx, b.Token, only("BOSTON")); err != nil {
				t.Fatal(err)
			}
		}, token: held},
		{name: "expired", do: func() {
			n, _, err := c.Get(ctx, boston, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			b = n
			clk.Advance(time.Hour)
		}, token: held},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		e, ok, err := c.Lookup(ctx, s.token())
		if err != nil || ok != s.found {
			t.Fatalf("%s: Lookup = %v, %v; want found=%v", s.name, ok, err, s.found)
		}
		if ok && e.Key != boston {
			t.Fatalf("%s: entry key %v, want %v", s.name, e.Key, boston)
		}
	}
}
