package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
)

// runEmulator serves the CARTO emulator on its own, for running the broker
// (or anything else speaking CARTO's APIs) against it from another process.
func runEmulator(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("cartosim", flag.ContinueOnError)
	flags.SetOutput(stderr)
	host := flags.String("host", "127.0.0.1", "listen host")
	port := flags.Int("port", 8001, "listen port")
	publicURL := flags.String("public-url", "", "base URL written into Maps responses (default http://<host>:<port>)")
	latency := flags.Duration("latency", 0, "latency added to every request")
	oauthTTL := flags.Duration("oauth-ttl", 24*time.Hour, "lifetime of OAuth tokens")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	id, _ := env("CARTO_CLIENT_ID")
	secret, _ := env("CARTO_CLIENT_SECRET")
	if id == "" || secret == "" {
		id, secret = cartosim.NewClient()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("CARTO emulator: %w", err)
	}
	base := "http://" + ln.Addr().String()
	if *publicURL == "" {
		*publicURL = base
	}
	sim, err := cartosim.New(cartosim.Config{ClientID: id, ClientSecret: secret, PublicURL: *publicURL, OAuthTTL: *oauthTTL})
	if err != nil {
		ln.Close()
		return err
	}
	sim.SetFaults(cartosim.Faults{Latency: *latency})
	fmt.Fprintf(stdout, `CARTO emulator on %s
Point a broker at it with:
  CARTO_BASE_URL=%s CARTO_AUTH_URL=%s/oauth/token CARTO_CLIENT_ID=%s CARTO_CLIENT_SECRET=%s
Control endpoints (GET /_sim/stats, PUT /_sim/faults, GET /_sim/tokens, POST /_sim/reset) need its control token:
  curl -s -H "Authorization: Bearer %s" %s/_sim/stats
`, base, base, base, id, secret, sim.ControlToken(), base)
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(slog.NewTextHandler(stderr, nil), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
