// Package brokertest starts a real TokenBroker for tests of code that calls
// it (the Go client, the CLI): demo mode (the CARTO emulator in process, the
// reference users), on free loopback ports, stopped when the test ends.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
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

// Broker is a running broker.
type Broker struct {
	GRPCAddr    string // host:port
	RESTURL     string // http://host:port
	EmulatorURL string
	Emulator    *cartosim.Sim
}

// Start starts a demo-mode broker for a test and stops it when the test
// ends; env sets variables as the environment would (e.g. SESSION_TTL). Its
// logs go to logs, or nowhere when nil.
func Start(t testing.TB, env map[string]string, logs io.Writer) *Broker {
	t.Helper()
	b, stop, err := New(env, logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// New starts a demo-mode broker outside a test (in a TestMain, say); stop
// stops it.
func New(env map[string]string, logs io.Writer) (b *Broker, stop func() error, err error) {
	dir, err := os.MkdirTemp("", "brokertest-")
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	vars := map[string]string{"PORT": "0", "GRPC_PORT": "0", "DEMO_CARTO_PORT": "0"}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load([]string{"--demo", "--env-file", filepath.Join(dir, "none")},
		func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		return nil, nil, err
	}
	if logs == nil {
		logs = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop = func() error {
		cancel()
		defer os.RemoveAll(dir)
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
		return nil, nil, fmt.Errorf("brokertest: the broker stopped before serving: %w", err)
	case <-time.After(10 * time.Second):
		_ = stop()
		return nil, nil, errors.New("brokertest: the broker is not serving after 10s")
	}
	return &Broker{GRPCAddr: a.GRPCAddr(), RESTURL: "http://" + a.HTTPAddr(), EmulatorURL: a.EmulatorURL(), Emulator: a.Emulator()}, stop, nil
}
