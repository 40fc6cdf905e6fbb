package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
)

// hashPassword prints the bcrypt hash of a password read from stdin (without
// echo on a terminal). The password is never taken as an argument, where it
// would land in shell history and process listings.
func hashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	flags.SetOutput(stderr)
	cost := flags.Int("cost", 12, fmt.Sprintf("bcrypt cost (at least %d; each step doubles the work of a login)", auth.MinBcryptCost))
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	var pw string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return fmt.Errorf("read password: %w", err)
		}
		pw = string(b)
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if pw == "" {
		return usageError{errors.New("hash-password: empty password (give it on stdin)")}
	}
	if len(pw) > auth.MaxPasswordLen {
		return usageError{fmt.Errorf("hash-password: the password is %d bytes; bcrypt uses at most %d (logins refuse longer ones): choose a shorter one", len(pw), auth.MaxPasswordLen)}
	}
	h, err := auth.HashPassword(pw, *cost)
	if err != nil {
		return usageError{err}
	}
	_, err = fmt.Fprintln(stdout, h)
	return err
}
