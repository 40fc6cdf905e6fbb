package memstore_test

import (
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewBackend: func(*testing.T) string { return "" },
		Open: func(_ *testing.T, _ string, _ []byte, now func() time.Time) (store.Store, error) {
			return memstore.New(memstore.Config{Now: now}), nil
		},
	})
}
