// Command tokenbroker-cli calls a TokenBroker from the command line, for
// operators: sign in, fetch a CARTO API token, revoke, list the tokens held,
// list and run named queries.
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
//	queries                     lists the named queries you may run (without a bearer: the public ones)
//	query [--geojson] NAME [param=value ...]
//	                            prints a named query's rows (--geojson: its GeoJSON FeatureCollection, one line)
//
// Global flags:
//
//	--addr host:port   the broker's gRPC address (default $TOKENBROKER_ADDR, else localhost:9090)
//	--token T          the bearer: a session from login, or an IdP token (default $TOKENBROKER_TOKEN)
//	--ca FILE          PEM CA certificates to verify the broker with; enables TLS
//	--cert, --key FILE a PEM client certificate and key (a service's identity); enables TLS
//	--timeout D        for the whole command (default 10s; 0: none)
//	--json             machine-readable output
//	--version          print the version, commit and Go version, and exit
//
// The password of login is read as one line from standard input, never from
// the command line. Pipe it in (from a password manager or a file): on a
// terminal the prompt reads it with echo on, since this tool does not switch
// the terminal's echo off.
//
//	pass show broker/boston | tokenbroker-cli login --username user.boston@acme.com
//
// A named query's parameters are given as param=value arguments, each at
// most once; those bound to the caller (its group, say) are filled in by the
// broker. --json is a global flag, given before the command:
//
//	tokenbroker-cli query stores-by-city city=BOSTON storetype=Supermarket
//	tokenbroker-cli --json query my-stores storetype=Drugstore
//
// Exit status: 0 on success; 1 when the broker (or the connection to it)
// answered with an error, printed as "error: <code>: <message>"; 2 on a
// usage error (unknown command or flag, missing argument, unreadable TLS
// file, no password).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/internal/version"
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
  queries                     lists the named queries you may run (without a bearer: the public ones)
  query [--geojson] NAME [param=value ...]
                              prints a named query's rows (--geojson: its GeoJSON FeatureCollection, one line)

global flags:
`

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// run runs the command line args (without the program name) and returns the
// exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	g := globals{stdin: stdin, stdout: stdout, stderr: stderr, stdinTerminal: isTerminal(stdin)}
	fs := g.flagSet(getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage // flag has printed the problem and the usage
	}
	if g.version {
		fmt.Fprintln(stdout, version.Get().String("tokenbroker-cli"))
		return exitOK
	}
	if g.token == "" {
		g.token = getenv("TOKENBROKER_TOKEN")
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
	case "queries":
		err = g.queries(ctx, cmdArgs)
	case "query":
		err = g.query(ctx, cmdArgs)
	case "help":
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	default:
		err = usagef("unknown command %q", cmd)
	}
	return exitStatus(err, stderr)
}

// exitStatus prints err, if any, and returns the exit status it means.
func exitStatus(err error, stderr io.Writer) int {
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
