package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/tokenbroker/tokenbroker/client"
)

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
	c, err := g.client(ctx, client.Config{})
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
