package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/tokenbroker/tokenbroker/client"
)

// queries lists the named queries the caller may run (without --token: the
// public ones).
func (g *globals) queries(ctx context.Context, args []string) error {
	fs := g.flags("queries")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := g.client(ctx, client.Config{})
	if err != nil {
		return err
	}
	defer c.Close()
	qs, err := c.Queries(ctx)
	if err != nil {
		return err
	}
	if g.json {
		type param struct {
			Name         string   `json:"name"`
			BoundTo      string   `json:"bound_to"`
			Type         string   `json:"type"`
			Required     bool     `json:"required"`
			DefaultValue string   `json:"default_value"`
			Allowed      []string `json:"allowed"`
			Pattern      string   `json:"pattern"`
			Min          string   `json:"min"`
			Max          string   `json:"max"`
			MinLength    int      `json:"min_length"`
			MaxLength    int      `json:"max_length"`
		}
		type query struct {
			Name       string   `json:"name"`
			APIs       []string `json:"apis"`
			Public     bool     `json:"public"`
			Parameters []param  `json:"parameters"`
		}
		out := struct {
			Queries []query `json:"queries"`
		}{Queries: []query{}}
		for _, q := range qs {
			jq := query{Name: q.Name, APIs: nonNil(q.APIs), Public: q.Public, Parameters: []param{}}
			for _, p := range q.Parameters {
				jq.Parameters = append(jq.Parameters, param{p.Name, p.BoundTo, p.Type, p.Required, p.Default,
					nonNil(p.Allowed), p.Pattern, p.Min, p.Max, p.MinLength, p.MaxLength})
			}
			out.Queries = append(out.Queries, jq)
		}
		return g.writeJSON(out)
	}
	// One line per parameter; a query's name on its first.
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tAPIS\tPUBLIC\tPARAMETER\tTYPE\tRULES")
	for _, q := range qs {
		head := fmt.Sprintf("%s\t%s\t%t", cell(q.Name), cell(strings.Join(q.APIs, ",")), q.Public)
		if len(q.Parameters) == 0 {
			fmt.Fprintf(tw, "%s\t\t\t\n", head)
		}
		for i, p := range q.Parameters {
			if i > 0 {
				head = "\t\t"
			}
			typ := p.Type
			if p.BoundTo != "" {
				typ = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", head, cell(p.Name), cell(typ), cell(rules(p)))
		}
	}
	return tw.Flush()
}

// rules describes what a parameter accepts, for the table.
func rules(p client.QueryParameter) string {
	if p.BoundTo != "" {
		return "bound to the caller's " + p.BoundTo
	}
	var r []string
	if p.Required {
		r = append(r, "required")
	}
	if p.Default != "" {
		r = append(r, "default "+p.Default)
	}
	if len(p.Allowed) > 0 {
		r = append(r, "one of: "+strings.Join(p.Allowed, ", "))
	}
	if p.Pattern != "" {
		r = append(r, "matching "+p.Pattern)
	}
	if p.Min != "" {
		r = append(r, "at least "+p.Min)
	}
	if p.Max != "" {
		r = append(r, "at most "+p.Max)
	}
	if p.MinLength > 0 {
		r = append(r, fmt.Sprintf("at least %d characters", p.MinLength))
	}
	if p.MaxLength > 0 {
		r = append(r, fmt.Sprintf("at most %d characters", p.MaxLength))
	}
	if len(r) == 0 {
		return "optional"
	}
	return strings.Join(r, "; ")
}

// cell makes s fit one table cell: tabs and line breaks become spaces.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r', '\v', '\f':
			return ' '
		}
		return r
	}, s)
}
