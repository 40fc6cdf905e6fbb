package tokencache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

func TestQuotaGuards(t *testing.T) {
	clk := clocktest.New()
	key := func(g string) store.Key { return store.Key{Group: g, PolicyHash: boston.PolicyHash} }
	t.Run("live tokens", func(t *testing.T) {
		up := &fakeUpstream{}
		c := New(Config{Store: memstore.New(memstore.Config{Now: clk.Now}), Upstream: up, Now: clk.Now, MaxLiveTokens: 2})
		for _, g := range []string{"A", "B"} {
			if _, _, err := c.Get(context.Background(), key(g), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := c.Get(context.Background(), key("C"), time.Hour)
		if !errors.Is(err, ErrQuotaExceeded) || !strings.Contains(err.Error(), "limit of 2 live CARTO tokens") {
			t.Fatalf("third key: %v", err)
		}
		if e, _, err := c.Get(context.Background(), key("A"), time.Hour); err != nil || e.Token == "" {
			t.Fatalf("an existing token is no longer served: %v", err)
		}
		if up.mints.Load() != 2 {
			t.Fatalf("%d mints", up.mints.Load())
		}
	})
	t.Run("creations per window", func(t *testing.T) {
		up := &fakeUpstream{}
		c := New(Config{Store: memstore.New(memstore.Config{Now: clk.Now}), Upstream: up, Now: clk.Now, MaxMints: 2, MintWindow: time.Hour})
		for _, g := range []string{"A", "B"} {
			if _, _, err := c.Get(context.Background(), key(g), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := c.Get(context.Background(), key("C"), time.Hour)
		if !errors.Is(err, ErrQuotaExceeded) || !strings.Contains(err.Error(), "2 CARTO token creations per 1h0m0s") || !strings.Contains(err.Error(), "retry in") {
			t.Fatalf("third creation: %v", err)
		}
		clk.Advance(time.Hour)
		if _, _, err := c.Get(context.Background(), key("C"), 2*time.Hour); err != nil {
			t.Fatalf("next window: %v", err)
		}
	})
}
