package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tokenbroker/tokenbroker/client"
)

// globals are the global flags.
type globals struct {
	addr, token    string
	ca, cert, key  string
	timeout        time.Duration
	json           bool
	version        bool
	stdin          io.Reader
	stdout, stderr io.Writer
	stdinTerminal  bool
}

// flagSet returns the flag set of the global flags, writing to g, with the
// defaults getenv gives.
func (g *globals) flagSet(getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("tokenbroker-cli", flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	fs.Usage = func() {
		fmt.Fprint(g.stderr, usage)
		fs.PrintDefaults()
	}
	addr := getenv("TOKENBROKER_ADDR")
	if addr == "" {
		addr = "localhost:9090"
	}
	fs.StringVar(&g.addr, "addr", addr, "the broker's gRPC `host:port` ($TOKENBROKER_ADDR)")
	// No default shown for the token: usage must not print it.
	fs.StringVar(&g.token, "token", "", "the bearer `token`: a session from login or an IdP token (default $TOKENBROKER_TOKEN)")
	fs.StringVar(&g.ca, "ca", "", "PEM `file` of CA certificates to verify the broker (enables TLS)")
	fs.StringVar(&g.cert, "cert", "", "PEM client certificate `file`, a service's identity (enables TLS; with --key)")
	fs.StringVar(&g.key, "key", "", "PEM private key `file` of --cert")
	fs.DurationVar(&g.timeout, "timeout", 10*time.Second, "time allowed for the whole command (0: none)")
	fs.BoolVar(&g.json, "json", false, "machine-readable (JSON) output")
	fs.BoolVar(&g.version, "version", false, "print the version, commit and Go version, and exit")
	return fs
}

// isTerminal reports whether stdin is a terminal, where login prompts.
func isTerminal(stdin io.Reader) bool {
	f, ok := stdin.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// flags returns the flag set of a command; parse reports errors as usage
// errors.
func (g *globals) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("tokenbroker-cli "+name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	if fs.NArg() != positional {
		return nil, usagef("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return fs.Args(), nil
}

// client returns a client of the broker with the global flags, and cfg's
// Username, Password and Group.
func (g *globals) client(ctx context.Context, cfg client.Config) (*client.Client, error) {
	cfg.Addr = g.addr
	if cfg.Username == "" {
		cfg.Token = g.token
	}
	var err error
	if cfg.TLS, err = g.tlsConfig(); err != nil {
		return nil, err
	}
	c, err := client.New(ctx, cfg)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return c, nil
}

// tlsConfig returns the TLS configuration of --ca, --cert and --key, or nil
// for plaintext.
func (g *globals) tlsConfig() (*tls.Config, error) {
	if g.ca == "" && g.cert == "" && g.key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if g.ca != "" {
		pem, err := os.ReadFile(g.ca)
		if err != nil {
			return nil, usagef("--ca: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usagef("--ca: no PEM certificate in %s", g.ca)
		}
	}
	if (g.cert == "") != (g.key == "") {
		return nil, usagef("--cert and --key go together")
	}
	if g.cert != "" {
		pair, err := tls.LoadX509KeyPair(g.cert, g.key)
		if err != nil {
			return nil, usagef("--cert/--key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func (g *globals) writeJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
