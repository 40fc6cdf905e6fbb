package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// upstream mints tokens of a real CARTO token's length at once.
type upstream struct{ n int }

func (u *upstream) Mint(_ context.Context, _ store.Key, _ time.Time) (string, error) {
	u.n++
	// A CARTO API token is a ~124-character HS256 JWT.
	return fmt.Sprintf("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.%s.%064d", strings.Repeat("x", 20), u.n), nil
}

func (u *upstream) Delete(context.Context, string) error { return nil }

// memoryPerKey is the heap growth per cached key after n keys: the cache's
// front entry and the (memory) store's records, as a single replica on the
// memory store holds them.
func memoryPerKey(ctx context.Context, n int) (float64, error) {
	mem := memstore.New(memstore.Config{})
	c := tokencache.New(tokencache.Config{Store: mem, Upstream: &upstream{}})
	keys := make([]store.Key, n)
	for i := range keys {
		h := sha256.Sum256([]byte(fmt.Sprint(i)))
		keys[i] = store.Key{Group: fmt.Sprintf("GROUP-%07d", i), PolicyHash: hex.EncodeToString(h[:])}
	}
	before := heap()
	for _, k := range keys {
		if _, _, err := c.Get(ctx, k, 24*time.Hour); err != nil {
			return 0, err
		}
	}
	after := heap()
	runtime.KeepAlive(c)
	runtime.KeepAlive(keys)
	return float64(after-before) / float64(n), nil
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
