package namedquery

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

// Caller is who runs a query: the caller's identity, or none for a public
// query run without credentials.
type Caller struct {
	Group  string
	User   string
	Claims map[string]string // an IdP caller's string claims, by name
}

// The kinds of refusal Bind returns (refusal.Error wraps them; the caller's
// message names the parameter and the rule, never the SQL).
var (
	// ErrInvalidParameter: a value outside its declaration, an unknown or a
	// bound parameter supplied, a required one missing.
	ErrInvalidParameter = errors.New("invalid query parameter")
	// ErrNoIdentity: the caller lacks the identity value a bound
	// parameter holds (a claim its token does not carry, say).
	ErrNoIdentity = errors.New("the caller lacks an identity value the query binds")
)

// Run is one run of a query: the queryParameters to send CARTO, and a
// canonical encoding of them for the result cache.
type Run struct {
	Query  *Query
	Params map[string]any // nil when the query has none
	Key    string         // the query's name and every value after binding
}

// Bind checks the values c supplied (one per name) against q's
// declarations, adds the identity-bound ones from c, and returns the run.
// Every refusal is a *refusal.Error of ErrInvalidParameter or ErrNoIdentity.
func (q *Query) Bind(c Caller, supplied map[string]string) (Run, error) {
	for _, name := range slices.Sorted(maps.Keys(supplied)) {
		p := q.param(name)
		switch {
		case p == nil:
			return Run{}, refusal.Newf(ErrInvalidParameter, "unknown parameter %q: %s", name, q.describe())
		case p.Bind != "":
			return Run{}, refusal.Newf(ErrInvalidParameter, "parameter %s is the caller's %s: it cannot be supplied", name, p.Bind)
		}
	}
	params := make(map[string]any, len(q.Params))
	for i := range q.Params {
		p := &q.Params[i]
		if p.Bind != "" {
			v, ok := c.value(p)
			if !ok {
				return Run{}, refusal.Newf(ErrNoIdentity, "query %s needs the caller's %s, which this caller does not have", q.Name, p.Bind)
			}
			params[p.Name] = v
			continue
		}
		s, given := supplied[p.Name]
		switch {
		case given:
			v, err := p.accept(s)
			if err != nil {
				return Run{}, refusal.Newf(ErrInvalidParameter, "parameter %s %v", p.Name, err)
			}
			params[p.Name] = v
		case p.def != nil:
			params[p.Name] = p.def
		case p.Required:
			return Run{}, refusal.Newf(ErrInvalidParameter, "parameter %s is required", p.Name)
		}
		// An optional parameter without a default is sent as null.
		if _, set := params[p.Name]; !set {
			params[p.Name] = nil
		}
	}
	if len(params) == 0 {
		params = nil
	}
	return Run{Query: q, Params: params, Key: q.runKey(params)}, nil
}

// runKey encodes a run canonically: the query's name, then each parameter
// in declaration order as its quoted name and typed value; quoting keeps
// every boundary where it is, whatever a value holds.
func (q *Query) runKey(params map[string]any) string {
	var b strings.Builder
	b.WriteString(strconv.Quote(q.Name))
	for _, p := range q.Params {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(p.Name))
		switch v := params[p.Name].(type) {
		case nil:
			b.WriteString("=null")
		case string:
			b.WriteString("=s")
			b.WriteString(strconv.Quote(v))
		case int64:
			b.WriteString("=i")
			b.WriteString(strconv.FormatInt(v, 10))
		case float64:
			b.WriteString("=f")
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		case bool:
			b.WriteString("=b")
			b.WriteString(strconv.FormatBool(v))
		default: // not made by Bind
			b.WriteString("=?")
			b.WriteString(strconv.Quote(fmt.Sprint(v)))
		}
	}
	return b.String()
}

func (q *Query) param(name string) *Param {
	for i := range q.Params {
		if q.Params[i].Name == name {
			return &q.Params[i]
		}
	}
	return nil
}

// describe lists the parameters a caller may supply, for an error.
func (q *Query) describe() string {
	var names []string
	for _, p := range q.Params {
		if p.Bind == "" {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return "query " + q.Name + " takes none"
	}
	return "query " + q.Name + " takes " + strings.Join(names, ", ")
}

// value is the identity value p is bound to.
func (c Caller) value(p *Param) (string, bool) {
	var v string
	switch {
	case p.Bind == BindGroup:
		v = c.Group
	case p.Bind == BindUser:
		v = c.User
	default:
		v = c.Claims[strings.TrimPrefix(p.Bind, BindClaim)]
	}
	return v, v != ""
}
