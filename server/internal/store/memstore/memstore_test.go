package memstore_test

import (
	"testing"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewBackend: func(*testing.T) string { return "" },
		Open: func(*testing.T, string, []byte) (store.Store, error) {
			return memstore.New(memstore.Config{}), nil
		},
	})
}
