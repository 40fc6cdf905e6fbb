package tokencache_test

import (
	"testing"

	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewBackend: func(*testing.T) string { return "" },
		Open: func(*testing.T, string, []byte) (tokencache.Store, error) {
			return tokencache.NewMemory(nil), nil
		},
	})
}
