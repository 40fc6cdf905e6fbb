package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/tokenbroker/tokenbroker/client"
)

// query runs a named query: query [--geojson] NAME [param=value ...]. Flags
// may come anywhere before a "--".
func (g *globals) query(ctx context.Context, args []string) error {
	fs := g.flags("query")
	geojson := fs.Bool("geojson", false, "print the GeoJSON FeatureCollection (Maps API), one line, instead of the rows")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tokenbroker-cli [global flags] query [--geojson] NAME [param=value ...]\n")
		fs.PrintDefaults()
	}
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err.Error()}
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			positional = append(positional, rest...) // no flags after --
			break
		}
		positional, rest = append(positional, rest[0]), rest[1:]
	}
	if len(positional) == 0 || positional[0] == "" {
		return usagef("query: want a query name: query [--geojson] NAME [param=value ...]")
	}
	name := positional[0]
	params := map[string]string{}
	for _, a := range positional[1:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return usagef("query: %q is not param=value", a)
		}
		if _, dup := params[k]; dup {
			return usagef("query: parameter %q given twice", k)
		}
		params[k] = v
	}
	c, err := g.client(ctx, client.Config{})
	if err != nil {
		return err
	}
	defer c.Close()

	if *geojson {
		fc, err := c.QueryGeoJSON(ctx, name, params)
		if err != nil {
			return err
		}
		// One line, as a map loads it (pipe it through jq to read it).
		_, err = fmt.Fprintf(g.stdout, "%s\n", fc)
		return err
	}
	res, err := c.Query(ctx, name, params)
	if err != nil {
		return err
	}
	if g.json {
		type column struct {
			Name string `json:"name"`
			Type string `json:"type"`
		}
		out := struct {
			Columns []column         `json:"columns"`
			Rows    []map[string]any `json:"rows"`
		}{Columns: []column{}, Rows: res.Rows}
		for _, col := range res.Columns {
			out.Columns = append(out.Columns, column(col))
		}
		if out.Rows == nil {
			out.Rows = []map[string]any{}
		}
		return g.writeJSON(out)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	for i, col := range res.Columns {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, cell(col.Name))
	}
	fmt.Fprintln(tw)
	for _, row := range res.Rows {
		for i, col := range res.Columns {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, cell(formatValue(row[col.Name])))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// formatValue renders a value of a row for the table: text as it is,
// numbers without exponents, null as NULL, objects and lists (a geometry,
// say) as compact JSON.
func formatValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
