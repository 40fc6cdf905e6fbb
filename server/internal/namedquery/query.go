// Package namedquery holds the queries the broker runs itself: each a name,
// a connection, SQL with named @parameters, the CARTO APIs it is served
// through, who may run it, and how its results are kept and bounded. Every
// parameter is declared: bound to the caller's identity (group, user, an
// identity provider's claim), or supplied by the caller with a type and rules. Values reach
// CARTO only as queryParameters, never in the SQL text.
//
// A Set is built once from the configuration, reporting every problem at
// once; Bind turns a caller and the values it supplied into the
// queryParameters of one run, or into a refusal that names the parameter
// and the rule.
package namedquery

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// The CARTO APIs a query is served through.
const (
	APISQL  = "sql"  // rows, through the SQL API
	APIMaps = "maps" // a GeoJSON FeatureCollection, through the Maps API
)

// AllGroups in Groups lets every group run a query.
const AllGroups = "*"

// Bounds of what a query may be configured with, and the defaults within
// them: every result is bounded, whatever the configuration says.
const (
	DefaultMaxRows   = 10_000
	MaxMaxRows       = 1_000_000
	DefaultMaxBytes  = 8 << 20
	MaxMaxBytes      = 64 << 20
	MaxCacheTTL      = 24 * time.Hour
	DefaultMaxLength = 256 // of a supplied string value
	MaxMaxLength     = 4096
)

// Query is a named query as configured.
type Query struct {
	Name       string
	Connection string
	SQL        string
	APIs       []string // APISQL, APIMaps
	// Groups that may run it (AllGroups: every group); empty when Public.
	Groups []string
	// Public queries run without a caller; they may bind no identity.
	Public bool
	// CacheTTL is how long a result is reused (0: not at all).
	CacheTTL time.Duration
	// MaxRows and MaxBytes bound a result (0: the defaults).
	MaxRows  int
	MaxBytes int64
	Params   []Param
}

// Param is a declared parameter.
type Param struct {
	Name string
	// Bind names the identity value the parameter holds: BindGroup,
	// BindUser or BindClaim+name. Empty: the caller supplies it.
	Bind string
	// The rules of a supplied value.
	Type      Type
	Required  bool
	Default   *string  // text, read as Type
	Allowed   []string // values, read as Type
	Pattern   string   // RE2, matching the whole value (strings)
	Min, Max  string   // bounds, read as Type (integer, number, date, timestamp)
	MinLength int      // strings
	MaxLength int      // strings; DefaultMaxLength when 0
	compiled  *regexp.Regexp
	allowed   []any
	def       any
	min, max  any
}

// What a parameter may be bound to.
const (
	BindGroup = "group"
	BindUser  = "user"
	BindClaim = "claim:" // an identity provider's string claim: claim:<name>
)

var (
	queryName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
)

// Set is the configured queries, checked and ready to bind.
type Set struct {
	byName   map[string]*Query
	names    []string // sorted
	policies sync.Map // audience key -> policy.Policy (Policy)
}

// NewSet checks the queries, reporting every problem at once.
func NewSet(queries []Query) (*Set, error) {
	s := &Set{byName: make(map[string]*Query, len(queries))}
	var errs []error
	seen := map[string]bool{}
	for i := range queries {
		q := queries[i]
		q.Params = slices.Clone(q.Params) // check compiles into them
		label := fmt.Sprintf("query %d", i+1)
		if q.Name != "" {
			label = fmt.Sprintf("query %q", q.Name)
		}
		qerrs := q.check()
		if seen[q.Name] && q.Name != "" {
			qerrs = append(qerrs, errors.New("the name is used by another query"))
		}
		seen[q.Name] = true
		for _, err := range qerrs {
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
		}
		if len(qerrs) == 0 {
			s.byName[q.Name] = &q
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.names = slices.Sorted(maps.Keys(s.byName))
	return s, nil
}

// Get returns the query named name.
func (s *Set) Get(name string) (*Query, bool) {
	q, ok := s.byName[name]
	return q, ok
}

// Visible returns the queries c may run, by name.
func (s *Set) Visible(c Caller) []*Query {
	var out []*Query
	for _, n := range s.names {
		if q := s.byName[n]; q.Allows(c) {
			out = append(out, q)
		}
	}
	return out
}

// Allows reports whether c may run q: anyone a public query, otherwise a
// caller of one of its groups.
func (q *Query) Allows(c Caller) bool {
	if q.Public {
		return true
	}
	if c.Group == "" {
		return false
	}
	return slices.Contains(q.Groups, AllGroups) || slices.Contains(q.Groups, c.Group)
}

// Limits returns the result bounds in force.
func (q *Query) Limits() (maxRows int, maxBytes int64) {
	maxRows, maxBytes = q.MaxRows, q.MaxBytes
	if maxRows == 0 {
		maxRows = DefaultMaxRows
	}
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	return maxRows, maxBytes
}

// check reports every problem of q, and compiles its parameters' rules.
func (q *Query) check() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !queryName.MatchString(q.Name) {
		add("name %q must be 1 to 64 lower-case letters, digits, - or _, starting with a letter or digit (it is part of URLs)", q.Name)
	}
	if strings.TrimSpace(q.Connection) == "" {
		add("connection is required")
	}
	if strings.TrimSpace(q.SQL) == "" {
		add("sql is required")
	}
	if len(q.APIs) == 0 {
		add("apis must name %s, %s or both", APISQL, APIMaps)
	}
	for _, a := range q.APIs {
		if a != APISQL && a != APIMaps {
			add("apis: unknown API %q (known: %s, %s)", a, APISQL, APIMaps)
		}
	}
	switch {
	case q.Public && len(q.Groups) > 0:
		add("a public query names no groups")
	case !q.Public && len(q.Groups) == 0:
		add("groups must name who may run it (or %q for every group), unless it is public", AllGroups)
	}
	if q.CacheTTL < 0 || q.CacheTTL > MaxCacheTTL {
		add("cache_ttl %s is outside [0s, %s]", q.CacheTTL, MaxCacheTTL)
	}
	if q.MaxRows < 0 || q.MaxRows > MaxMaxRows {
		add("max_rows %d is outside [0, %d]", q.MaxRows, MaxMaxRows)
	}
	if q.MaxBytes < 0 || q.MaxBytes > MaxMaxBytes {
		add("max_bytes %d is outside [0, %d]", q.MaxBytes, MaxMaxBytes)
	}
	declared := map[string]bool{}
	for i := range q.Params {
		p := &q.Params[i]
		if declared[p.Name] {
			add("parameter %s is declared twice", p.Name)
		}
		declared[p.Name] = true
		for _, err := range p.check(q.Public) {
			add("parameter %s: %w", p.Name, err)
		}
	}
	used := sqlParams(q.SQL)
	for _, name := range used {
		if !declared[name] {
			add("sql uses @%s, which is not declared under params", name)
		}
	}
	for _, p := range q.Params {
		if p.Name != "" && !slices.Contains(used, p.Name) {
			add("parameter %s is declared but sql does not use @%s", p.Name, p.Name)
		}
	}
	return errs
}
