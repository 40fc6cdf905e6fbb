package storetest

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/boltstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/redisstore"
)

// Replicas returns, per store kind, one store as two replicas see it: the
// same memstore twice, the same bbolt file twice (one handle: bbolt locks its
// file), and two Redis clients of one redis-server (without redis-server,
// Redis is left out, or t fails where redistest.Missing says so). Everything
// is closed when the test ends.
func Replicas(t testing.TB) map[string][2]store.Store {
	t.Helper()
	key := bytes.Repeat([]byte{0x42}, 32)
	mem := memstore.New(memstore.Config{})
	bolt, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "tokens.db"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	out := map[string][2]store.Store{"memory": {mem, mem}, "bbolt": {bolt, bolt}}
	if redistest.Missing(t) {
		t.Log("redis-server is not installed: the Redis store is not tested")
		return out
	}
	srv := redistest.Start(t)
	var replicas [2]store.Store
	for i := range replicas {
		c, err := redisstore.NewClient(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := redisstore.Open(context.Background(), redisstore.Config{Client: c, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		replicas[i] = s
	}
	out["redis"] = replicas
	return out
}
