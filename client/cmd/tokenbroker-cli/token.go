package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenbroker/tokenbroker/client"
)

func (g *globals) cartoToken(ctx context.Context, args []string) error {
	fs := g.flags("token")
	group := fs.String("group", "", "the `group` to ask for (services; a user gets their own)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := g.client(ctx, client.Config{Group: *group})
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
