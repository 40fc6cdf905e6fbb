package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tokenbroker/tokenbroker/client"
)

func (g *globals) list(ctx context.Context, args []string) error {
	fs := g.flags("list")
	group := fs.String("group", "", "only the tokens of this `group`")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := g.client(ctx, client.Config{})
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
