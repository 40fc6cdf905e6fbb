package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tokenbroker/tokenbroker/client"
)

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
	c, err := g.client(ctx, client.Config{Username: *username, Password: password})
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
