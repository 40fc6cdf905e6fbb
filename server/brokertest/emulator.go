package brokertest

import (
	"net/http/httptest"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
)

// Emulator is a CARTO emulator served on loopback, which accepts the OAuth
// client of configured brokers (CartoClientID). Tests switch its faults,
// read its counters and wait on them (cartosim.Sim.WaitFor).
type Emulator struct {
	*cartosim.Sim
	URL string // http://host:port
	srv *httptest.Server
}

// EmulatorStats are an emulator's counters (see cartosim.Sim.Stats), named
// here for tests outside server/, which cannot import cartosim: a
// condition for WaitFor, say.
type EmulatorStats = cartosim.Stats

// StartEmulator starts an emulator that stops when the test ends.
func StartEmulator(t testing.TB) *Emulator {
	t.Helper()
	e, err := NewEmulator()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// NewEmulator starts an emulator outside a test; Close stops it.
func NewEmulator() (*Emulator, error) {
	sim, err := cartosim.New(cartosim.Config{ClientID: CartoClientID, ClientSecret: CartoClientSecret})
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(sim)
	return &Emulator{Sim: sim, URL: srv.URL, srv: srv}, nil
}

// Close stops the emulator.
func (e *Emulator) Close() { e.srv.Close() }
