package app

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/cartogateway"
)

// gatewayURL is where browsers reach the CARTO gateway: CARTO_GATEWAY_URL,
// or in demo mode /carto on the REST listener; "" when it is off.
func (a *App) gatewayURL() string {
	if a.cfg.Gateway.URL != "" || !a.cfg.Demo {
		return strings.TrimSuffix(a.cfg.Gateway.URL, "/")
	}
	scheme := "http"
	if a.cfg.TLS.Enabled() {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(a.httpLn.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		host = "localhost" // the name the guide's .env and the README use
	}
	return scheme + "://" + net.JoinHostPort(host, port) + a.cfg.Gateway.Path(true)
}

// GatewayURL is where browsers reach the CARTO gateway; "" when it is off.
func (a *App) GatewayURL() string { return a.gatewayURL() }

// newGateway makes the CARTO gateway, or nil when it is off. It calls CARTO
// (the emulator in demo mode) with its own HTTP client: its calls are the
// browsers', not the broker's, and are not retried.
func (a *App) newGateway() (http.Handler, error) {
	if a.gatewayURL() == "" {
		return nil, nil
	}
	return cartogateway.New(cartogateway.Config{
		Upstream: a.cfg.Carto.BaseURL,
		Client: &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ForceAttemptHTTP2:     true,
		}},
		Tokens:   a.cache,
		Policies: a.cfg.Built.Policies,
		CacheTTL: a.cfg.Gateway.CacheTTL,
		Logger:   a.log,
		Observer: a.metrics,
	})
}
