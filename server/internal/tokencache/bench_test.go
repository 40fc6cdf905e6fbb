package tokencache

import (
	"context"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

// BenchmarkCacheGetHit: a token served from the front cache.
func BenchmarkCacheGetHit(b *testing.B) {
	c := New(Config{Store: memstore.New(memstore.Config{}), Upstream: &fakeUpstream{}})
	ctx := context.Background()
	if _, _, err := c.Get(ctx, boston, 24*time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Get(ctx, boston, 24*time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionRevoked: the revocation check every call makes.
func BenchmarkSessionRevoked(b *testing.B) {
	c := New(Config{Store: memstore.New(memstore.Config{}), Upstream: &fakeUpstream{}})
	_ = c.RevokeSession(context.Background(), "other", time.Now().Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := c.SessionRevoked(context.Background(), "sid"); r {
			b.Fatal("revoked")
		}
	}
}
