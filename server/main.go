// Command tokenbroker is the TokenBroker server: it signs in the users of an
// existing application and hands each a CARTO API access token for their
// group, over gRPC and REST.
//
//	tokenbroker [flags]               serve (configured by environment, .env and flags)
//	tokenbroker --version             print the version, commit and Go version
//	tokenbroker --demo                serve with the CARTO emulator and demo users
//	tokenbroker hash-password         print a bcrypt hash for a users: entry
//	tokenbroker cartosim [flags]      run the CARTO emulator on its own
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "tokenbroker:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "tokenbroker:", err)
		os.Exit(1)
	}
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ error }

const usageText = `usage:
  tokenbroker [flags]            run the broker (configuration: README, "Configuration")
  tokenbroker --demo             run it with the CARTO emulator and demo users
  tokenbroker hash-password      read a password on stdin, print its bcrypt hash
  tokenbroker cartosim [flags]   run the CARTO emulator on its own
  tokenbroker --version          print the version, commit and Go version
  tokenbroker help               this text; "tokenbroker -h" lists the flags and variables
`

func run(ctx context.Context, args []string, env func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "hash-password":
			return hashPassword(args[1:], stdin, stdout, stderr)
		case "cartosim":
			return runEmulator(ctx, args[1:], env, stdout, stderr)
		case "help":
			_, err := io.WriteString(stdout, usageText)
			return err
		}
	}
	return serve(ctx, args, env, stdout, stderr)
}
