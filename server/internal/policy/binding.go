package policy

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// A frontend written against CARTO, such as the reference guide's, sends its
// group as a query parameter: "... WHERE city = @groupcity" with
// queryParameters {"groupcity": "BOSTON"}. CARTO matches grants on their
// text and binds parameters for anyone, so granting that text would let any
// user read any group's rows. Tokens are granted the literal text instead
// ("... WHERE city = 'BOSTON'"), and the CARTO gateway turns the frontend's
// request into it with Bind: only when the bound parameter holds the
// caller's own group.

// QueryTemplate is a grant as a frontend may write it: each Placeholder of
// the grant's source written as @Param.
type QueryTemplate struct {
	Connection string
	Param      string // the bound parameter, without its @
	Grant      string // the grant's source, as granted (the group a literal)
	text       string // the template's text, normalised (NormalizeSQL)
}

// Binding is what Bind decided for a query.
type Binding struct {
	// Template is the template the query matched; nil when it matched none,
	// and the query goes to CARTO as it was sent, for CARTO to judge.
	Template *QueryTemplate
	// Query is the literal grant to send in place of the query.
	Query string
	// Parameters are the query parameters left once the bound one is
	// dropped (nil when none is left).
	Parameters map[string]any
}

// ErrBinding reports a query that matches a template whose bound parameter
// does not hold the caller's value. Nothing of it may reach CARTO.
var ErrBinding = errors.New("bound query parameter")

var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateBound checks the bound parameters: valid names, each bound to a
// known identity value, each used by some grant.
func (t Template) validateBound() []error {
	var errs []error
	uses := false
	for _, g := range t.Grants {
		uses = uses || strings.Contains(g.Source, Placeholder)
	}
	for _, name := range slices.Sorted(maps.Keys(t.BoundParameters)) {
		switch v := t.BoundParameters[name]; {
		case !paramName.MatchString(name):
			errs = append(errs, fmt.Errorf("bound_parameters: %q is not a query parameter name (letters, digits, _)", name))
		case v != Placeholder:
			errs = append(errs, fmt.Errorf("bound_parameters: %s is bound to %q; only %s is supported", name, v, Placeholder))
		case !uses:
			errs = append(errs, fmt.Errorf("bound_parameters: %s is bound to %s, which no grant's source uses", name, Placeholder))
		}
	}
	return errs
}

// templatesOf returns grant g's templates, one per bound parameter, given
// its rendered source.
func (t Template) templatesOf(g GrantTemplate, rendered string) []QueryTemplate {
	if !strings.Contains(g.Source, Placeholder) {
		return nil
	}
	var out []QueryTemplate
	for _, name := range slices.Sorted(maps.Keys(t.BoundParameters)) {
		out = append(out, QueryTemplate{
			Connection: g.Connection, Param: name, Grant: rendered,
			text: NormalizeSQL(strings.ReplaceAll(g.Source, Placeholder, "@"+name)),
		})
	}
	return out
}

// Bind decides what the CARTO gateway sends for query q on connection conn
// with parameters params (decoded JSON: a bound value must be a string).
//
// A query that matches none of p's templates is not Bind's to judge: the
// Binding has no Template. A query that matches one is bound when its
// parameter holds exactly p.Group (case and spaces count): the Binding
// holds the literal grant and the parameters without the bound one.
// Otherwise Bind returns an error wrapping ErrBinding, saying which
// parameter is wrong but not what it should hold.
//
// Matching ignores differences of white space outside quoted text, and a
// trailing semicolon (NormalizeSQL); anything else, comments and the case
// of keywords included, must be as in the grant.
func (p Policy) Bind(conn, q string, params map[string]any) (Binding, error) {
	var tpl *QueryTemplate
	if len(p.Templates) > 0 {
		nq := NormalizeSQL(q)
		for i := range p.Templates {
			if t := &p.Templates[i]; t.Connection == conn && t.text == nq {
				tpl = t
				break
			}
		}
	}
	if tpl == nil {
		return Binding{}, nil
	}
	for k := range params {
		if k != tpl.Param && strings.EqualFold(k, tpl.Param) {
			return Binding{}, fmt.Errorf("%w @%s: given twice, as %q and %q", ErrBinding, tpl.Param, tpl.Param, k)
		}
	}
	v, ok := params[tpl.Param]
	switch s, isString := v.(string); {
	case !ok:
		return Binding{}, fmt.Errorf("%w @%s is missing from queryParameters: it must hold the caller's group", ErrBinding, tpl.Param)
	case !isString || s != p.Group:
		return Binding{}, fmt.Errorf("%w @%s does not hold the caller's group: only the caller's own rows may be read", ErrBinding, tpl.Param)
	}
	var rest map[string]any
	if len(params) > 1 {
		rest = maps.Clone(params)
		delete(rest, tpl.Param)
	}
	return Binding{Template: tpl, Query: tpl.Grant, Parameters: rest}, nil
}

// NormalizeSQL collapses each run of white space outside quoted text
// ('…', "…", `…`, with backslash escapes) into one space, and drops
// leading and trailing white space and trailing semicolons. Quoted text is
// kept as it is: 'NEW  YORK' is not 'NEW YORK'.
func NormalizeSQL(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	var quote rune
	escaped, space := false, false
	for _, r := range s {
		switch {
		case quote != 0:
			b.WriteRune(r)
			switch {
			case escaped:
				escaped = false
			case r == '\\':
				escaped = true
			case r == quote:
				quote = 0
			}
			continue
		case unicode.IsSpace(r):
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		if r == '\'' || r == '"' || r == '`' {
			quote = r
		}
		b.WriteRune(r)
	}
	out := b.String()
	if quote == 0 {
		out = strings.TrimRight(out, "; ")
	}
	return out
}
