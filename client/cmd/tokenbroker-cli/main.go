// Command tokenbroker-cli calls a TokenBroker from the command line, for
// operators: sign in, fetch a CARTO API token, revoke, list the tokens held.
//
// Usage:
//
//	tokenbroker-cli [global flags] <command> [command flags]
//
// Commands:
//
//	login --username U          sign in; prints the session token
//	token [--group G]           prints the CARTO API token of your group (a service: of G)
//	revoke session              revokes the session given with --token (a logout)
//	revoke carto-token <token>  revokes a CARTO token issued to your group
//	revoke group <G>            revokes every CARTO token of group G (admins)
//	list [--group G]            lists the CARTO tokens the broker holds (admins)
//
// Global flags:
//
//	--addr host:port   the broker's gRPC address (default $TOKENBROKER_ADDR, else localhost:9090)
//	--token T          the bearer: a session from login, or an IdP token (default $TOKENBROKER_TOKEN)
//	--ca FILE          PEM CA certificates to verify the broker with; enables TLS
//	--cert, --key FILE a PEM client certificate and key (a service's identity); enables TLS
//	--timeout D        for the whole command (default 10s; 0: none)
//	--json             machine-readable output
//
// The password of login is read as one line from standard input, never from
// the command line. Pipe it in (from a password manager or a file): on a
// terminal the prompt reads it with echo on, since this tool does not switch
// the terminal's echo off.
//
//	pass show broker/boston | tokenbroker-cli login --username user.boston@acme.com
//
// Exit status: 0 on success; 1 when the broker (or the connection to it)
// answered with an error, printed as "error: <code>: <message>"; 2 on a
// usage error (unknown command or flag, missing argument, unreadable TLS
// file, no password).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the broker or the connection failed
	exitUsage = 2
)

const usage = `usage: tokenbroker-cli [global flags] <command> [command flags]

commands:
  login --username U          sign in (password read from stdin); prints the session token
  token [--group G]           prints the CARTO API token of your group (a service: of G)
  revoke session              revokes the session given with --token (a logout)
  revoke carto-token <token>  revokes a CARTO token issued to your group
  revoke group <G>            revokes every CARTO token of group G (admins)
  list [--group G]            lists the CARTO tokens the broker holds (admins)

global flags:
`

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// globals are the global flags.
type globals struct {
	addr, token    string
	ca, cert, key  string
	timeout        time.Duration
	json           bool
	stdin          io.Reader
	stdout, stderr io.Writer
	stdinTerminal  bool
}

// run runs the command line args (without the program name) and returns the
// exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	g := globals{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("tokenbroker-cli", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage // flag has printed the problem and the usage
	}
	if g.token == "" {
		g.token = getenv("TOKENBROKER_TOKEN")
	}
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			g.stdinTerminal = true
		}
	}

	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "error: no command")
		fs.Usage()
		return exitUsage
	}
	if g.timeout < 0 {
		fmt.Fprintln(stderr, "error: --timeout must not be negative")
		return exitUsage
	}
	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}

	var err error
	switch cmd, cmdArgs := rest[0], rest[1:]; cmd {
	case "login":
		err = g.login(ctx, cmdArgs)
	case "token":
		err = g.cartoToken(ctx, cmdArgs)
	case "revoke":
		err = g.revoke(ctx, cmdArgs)
	case "list":
		err = g.list(ctx, cmdArgs)
	case "help":
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	default:
		err = usagef("unknown command %q", cmd)
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "error: %s\n(run tokenbroker-cli help for the usage)\n", ue.msg)
		return exitUsage
	}
	if s, ok := status.FromError(err); ok {
		fmt.Fprintf(stderr, "error: %s: %s\n", s.Code(), s.Message())
	} else {
		fmt.Fprintf(stderr, "error: %v\n", err)
	}
	return exitError
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

// client returns a client of the broker with the global flags, and opts'
// Username, Password and Group.
func (g *globals) client(ctx context.Context, opts client.Options) (*client.Client, error) {
	opts.Addr = g.addr
	if opts.Username == "" {
		opts.Token = g.token
	}
	var err error
	if opts.TLS, err = g.tlsConfig(); err != nil {
		return nil, err
	}
	c, err := client.New(ctx, opts)
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

func (g *globals) login(ctx context.Context, args []string) error {
	fs := g.flags("login")
	username := fs.String("username", "", "the `user` to sign in as (required); the password is read from stdin")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *username == "" {
		return usagef("login: --username is required")
	}
	password, err := g.readPassword(*username)
	if err != nil {
		return err
	}
	c, err := g.client(ctx, client.Options{Username: *username, Password: password})
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.Login(ctx)
	if err != nil {
		return err
	}
	if g.json {
		return g.writeJSON(struct {
			Token     string    `json:"token"`
			ExpiresAt time.Time `json:"expires_at"`
			Group     string    `json:"group"`
		}{s.Token, s.ExpiresAt.UTC(), s.Group})
	}
	_, err = fmt.Fprintln(g.stdout, s.Token)
	return err
}

// readPassword reads one line from stdin. On a terminal it prompts first;
// the terminal echoes what is typed.
func (g *globals) readPassword(username string) (string, error) {
	if g.stdinTerminal {
		fmt.Fprintf(g.stderr, "Password for %s (echoed; prefer piping it): ", username)
	}
	line, err := bufio.NewReader(g.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", usagef("login: reading the password from stdin: %v", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", usagef("login: no password on stdin (pipe it in, one line)")
	}
	return password, nil
}

func (g *globals) cartoToken(ctx context.Context, args []string) error {
	fs := g.flags("token")
	group := fs.String("group", "", "the `group` to ask for (services; a user gets their own)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := g.client(ctx, client.Options{Group: *group})
	if err != nil {
		return err
	}
	defer c.Close()
	t, err := c.CartoToken(ctx)
	if err != nil {
		return err
	}
	if !g.json {
		_, err = fmt.Fprintln(g.stdout, t.Token)
		return err
	}
	type grant struct {
		ConnectionName string `json:"connection_name"`
		Source         string `json:"source"`
	}
	out := struct {
		Token       string    `json:"token"`
		ExpiresAt   time.Time `json:"expires_at"`
		Group       string    `json:"group"`
		Grants      []grant   `json:"grants"`
		AllowedAPIs []string  `json:"allowed_apis"`
		Referers    []string  `json:"referers"`
		APIBaseURL  string    `json:"api_base_url"`
	}{
		Token: t.Token, ExpiresAt: t.ExpiresAt.UTC(), Group: t.Group, APIBaseURL: t.APIBaseURL,
		Grants: []grant{}, AllowedAPIs: nonNil(t.AllowedAPIs), Referers: nonNil(t.Referers),
	}
	for _, gr := range t.Grants {
		out.Grants = append(out.Grants, grant(gr))
	}
	return g.writeJSON(out)
}

func (g *globals) revoke(ctx context.Context, args []string) error {
	fs := g.flags("revoke")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	var target client.RevokeTarget
	switch a := fs.Args(); {
	case len(a) == 1 && a[0] == "session":
		if g.token == "" {
			return usagef("revoke session: give the session with --token or TOKENBROKER_TOKEN")
		}
		target = client.RevokeSession()
	case len(a) == 2 && a[0] == "carto-token" && a[1] != "":
		target = client.RevokeCartoToken(a[1])
	case len(a) == 2 && a[0] == "group" && a[1] != "":
		target = client.RevokeGroup(a[1])
	default:
		return usagef("revoke: want one of: session | carto-token <token> | group <G>")
	}
	c, err := g.client(ctx, client.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.Revoke(ctx, target)
	if err != nil {
		return err
	}
	if g.json {
		return g.writeJSON(struct {
			RevokedUntil time.Time `json:"revoked_until"`
			RevokedCount int       `json:"revoked_count"`
		}{r.RevokedUntil.UTC(), r.RevokedCount})
	}
	_, err = fmt.Fprintf(g.stdout, "revoked %s: %d CARTO token(s) deleted; recorded until %s\n",
		target, r.RevokedCount, r.RevokedUntil.UTC().Format(time.RFC3339))
	return err
}

func (g *globals) list(ctx context.Context, args []string) error {
	fs := g.flags("list")
	group := fs.String("group", "", "only the tokens of this `group`")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := g.client(ctx, client.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	held, err := c.ListTokens(ctx, *group)
	if err != nil {
		return err
	}
	if g.json {
		type token struct {
			Group       string    `json:"group"`
			MaskedToken string    `json:"masked_token"`
			TokenID     string    `json:"token_id"`
			Policy      string    `json:"policy"`
			Current     bool      `json:"current"`
			CreatedAt   time.Time `json:"created_at"`
			ExpiresAt   time.Time `json:"expires_at"`
		}
		out := struct {
			Tokens []token `json:"tokens"`
		}{Tokens: []token{}}
		for _, h := range held {
			out.Tokens = append(out.Tokens, token{h.Group, h.MaskedToken, h.TokenID, h.Policy, h.Current, h.CreatedAt.UTC(), h.ExpiresAt.UTC()})
		}
		return g.writeJSON(out)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOKEN\tID\tPOLICY\tCURRENT\tCREATED\tEXPIRES")
	for _, h := range held {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\n", h.Group, h.MaskedToken, h.TokenID, h.Policy, h.Current,
			h.CreatedAt.UTC().Format(time.RFC3339), h.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
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
