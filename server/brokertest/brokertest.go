// Package brokertest starts real TokenBrokers for tests, the one harness of
// the project's tests: in process (Start, New), for the Go client, the CLI,
// the README and the broker's own end-to-end tests; or as a process (Prepare
// and StartProcess), for tests that kill it or run replicas. A broker runs in
// demo mode (the CARTO emulator in process, the demo users) unless Config
// configures it as a deployment; it listens on free loopback ports and is
// stopped when the test ends. Options set its environment, its
// configuration, app.New's options and where its log goes.
package brokertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
	"github.com/tokenbroker/tokenbroker/server/internal/telemetry"
)

// The demo users.
const (
	BostonUser     = "user.boston@acme.com"
	BostonPassword = "boston"
	NYUser         = "user.ny@acme.com"
	NYPassword     = "ny"
	// AdminUser is an admin of group BOSTON.
	AdminUser     = "admin@acme.com"
	AdminPassword = "admin"
)

// startTimeout bounds how long a broker may take to serve.
const startTimeout = 20 * time.Second

// Broker is a broker running in process.
type Broker struct {
	GRPCAddr    string // host:port
	RESTURL     string // http://host:port, or https:// with TLS
	EmulatorURL string
	// GatewayURL is the broker's CARTO gateway, as IssueCartoToken answers
	// it ("" when it serves none).
	GatewayURL string
	Emulator   *cartosim.Sim
	// HTTP is a client for RESTURL: with TLS, it trusts Roots.
	HTTP *http.Client
	// Roots is what a client trusts the broker's certificate with: with
	// TLS, the client CA of its configuration (tests sign the server's and
	// the clients' certificates with one CA); nil without TLS.
	Roots *x509.CertPool
	// Logs holds the broker's log, JSON lines at debug level; nil with the
	// Logs option.
	Logs *logtest.Buffer
	// App is the broker itself, for what the addresses do not give.
	App *app.App

	stop     func() error
	stopOnce sync.Once
	stopErr  error
}

// Start starts a broker for a test and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	b, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// New starts a broker outside a test (in a TestMain, or a benchmark); Stop
// stops it.
func New(opts ...Option) (_ *Broker, err error) {
	dir, err := os.MkdirTemp("", "brokertest-")
	if err != nil {
		return nil, err
	}
	setup, s, closeEmulator, err := prepare(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	release := sync.OnceFunc(func() { closeEmulator(); os.RemoveAll(dir) })
	defer func() {
		if err != nil {
			release()
		}
	}()
	// The one place the harness reads the configuration: as the binary
	// does, from its command line and environment.
	cfg, err := config.Load(setup.Args, setup.lookup)
	if err != nil {
		return nil, err
	}
	b := &Broker{HTTP: http.DefaultClient}
	if cfg.TLS.Enabled() {
		if b.Roots, err = loadCAs(cfg.TLS.ClientCAFile); err != nil {
			return nil, err
		}
		b.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.Roots}}}
	}
	logs := s.logs
	if logs == nil {
		b.Logs = &logtest.Buffer{}
		logs = b.Logs
	}
	log := slog.New(telemetry.LogHandler{Handler: slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: telemetry.DurationsAsText})})
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log, s.appOpts...)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.stop = func() error {
		cancel()
		defer release()
		select {
		case err := <-done:
			return err
		case <-time.After(app.ShutdownTimeout + 5*time.Second):
			return errors.New("brokertest: the broker did not stop")
		}
	}
	select {
	case <-a.Serving():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("brokertest: the broker stopped before serving: %w", err)
	case <-time.After(startTimeout):
		_ = b.Stop()
		return nil, fmt.Errorf("brokertest: the broker is not serving after %s", startTimeout)
	}
	scheme := "http://"
	if cfg.TLS.Enabled() {
		scheme = "https://"
	}
	b.App, b.GRPCAddr, b.RESTURL = a, a.GRPCAddr(), scheme+a.HTTPAddr()
	b.Emulator, b.EmulatorURL, b.GatewayURL = a.Emulator(), a.EmulatorURL(), a.GatewayURL()
	if setup.Emulator != nil {
		b.Emulator, b.EmulatorURL = setup.Emulator.Sim, setup.Emulator.URL
	}
	return b, nil
}

// Stop stops the broker: it drains in-flight calls, then Run returns, whose
// error Stop returns. Later calls return the same.
func (b *Broker) Stop() error {
	b.stopOnce.Do(func() { b.stopErr = b.stop() })
	return b.stopErr
}

// loadCAs reads the PEM certificates of file.
func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("brokertest: the client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("brokertest: no PEM certificate in %s", file)
	}
	return pool, nil
}

// StoresOf counts the emulator's stores in city, straight from its table;
// it fails t when there are none (a test of a group's rows would prove
// nothing).
func (b *Broker) StoresOf(t testing.TB, city string) int {
	t.Helper()
	n := 0
	for _, row := range b.Emulator.Rows() {
		if row["city"] == city {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("the emulator has no stores in %s", city)
	}
	return n
}
