package app

import (
	"net"
	"net/http"
	"strconv"

	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
)

// emulator is demo mode's CARTO emulator, served on loopback.
type emulator struct {
	sim *cartosim.Sim
	ln  net.Listener
	srv *http.Server
	// carto is the OAuth client the emulator accepts, at its address.
	carto config.CartoConfig
}

// startEmulator opens the emulator's listener and makes it a fresh OAuth
// client; the broker is pointed at it with the emulator's carto.
func (a *App) startEmulator() (emulator, error) {
	ln, err := listen("CARTO emulator", "", "DEMO_CARTO_PORT", net.JoinHostPort("127.0.0.1", strconv.Itoa(a.cfg.EmulatorPort)))
	if err != nil {
		return emulator{}, err
	}
	base := "http://" + ln.Addr().String()
	id, secret := cartosim.NewClient()
	sim, err := cartosim.New(cartosim.Config{ClientID: id, ClientSecret: secret, PublicURL: base})
	if err != nil {
		ln.Close()
		return emulator{}, err
	}
	c := a.cfg.Carto
	c.BaseURL, c.AuthURL, c.ClientID, c.ClientSecret = base, base+"/oauth/token", id, secret
	return emulator{sim: sim, ln: ln, srv: newHTTPServer(sim, a.log), carto: c}, nil
}

// EmulatorURL is the demo emulator's base URL, "" outside demo mode.
func (a *App) EmulatorURL() string {
	if a.simLn == nil {
		return ""
	}
	return "http://" + a.simLn.Addr().String()
}

// Emulator is the demo mode's CARTO emulator, nil outside demo mode.
func (a *App) Emulator() *cartosim.Sim { return a.sim }
