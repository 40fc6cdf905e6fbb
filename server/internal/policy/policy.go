// Package policy maps a group to the grants of its CARTO API access token.
//
// A group's policy is a set of grants (connection + source), the CARTO APIs
// the token may call, the origins it may be used from and its lifetime. A
// source may hold the placeholder {{group}}, which is replaced by the group's
// name rendered as a string literal of the connection's SQL dialect, so a
// token reads that group's rows and nothing else. Rendering happens once per
// group; the result and its canonical hash are what the token cache keys on.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Placeholder is replaced in a grant's source by the group as a SQL literal.
const Placeholder = "{{group}}"

// The CARTO APIs a token may be allowed to call (CARTO's Tokens API).
var knownAPIs = []string{"imports", "lds", "maps", "sql"}

// ReferenceSource is the reference backend's granted query, with the group
// bound as a literal instead of the browser-chosen @groupcity parameter.
const ReferenceSource = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = " + Placeholder

// DefaultTokenTTL is the lifetime of minted tokens when a policy sets none.
// CARTO tokens never expire unless told to, so a lifetime is always set.
const DefaultTokenTTL = 24 * time.Hour

// Token lifetimes outside these bounds are refused: shorter ones would make the
// broker mint constantly, longer ones keep a leaked token useful for too long.
const (
	MinTokenTTL = 10 * time.Minute
	MaxTokenTTL = 30 * 24 * time.Hour
)

// ErrNoPolicy reports a group that no policy covers.
var ErrNoPolicy = errors.New("no token policy for the group")

// GrantTemplate is one grant of a policy before a group is rendered into it.
type GrantTemplate struct {
	Connection string
	Source     string  // may contain Placeholder
	Dialect    Dialect // how Placeholder is rendered; BigQuery when empty
	// Shared marks a source without Placeholder as meant: every member of
	// every group the policy applies to reads the same rows (a lookup
	// table, say). Without it such a grant is refused at start.
	Shared bool
}

// Template is a group's policy as configured.
type Template struct {
	Grants      []GrantTemplate
	AllowedAPIs []string
	Referers    []string
	TokenTTL    time.Duration // DefaultTokenTTL when zero
	// BoundParameters names the query parameters a frontend may write in
	// place of an identity value, each mapped to that value's placeholder
	// (only Placeholder today). The CARTO gateway accepts a grant written
	// with @name instead of the placeholder, when the parameter's value is
	// the caller's own, and sends CARTO the literal grant (see Bind).
	BoundParameters map[string]string
}

// ReferenceParameter is the query parameter the reference guide's frontend
// binds to the group: WHERE city = @groupcity.
const ReferenceParameter = "groupcity"

// Reference returns the reference backend's policy: the retail_stores query
// for the group on carto_dw, Maps API only, any origin, with the guide's
// @groupcity bound to the group.
func Reference() Template {
	return Template{
		Grants:          []GrantTemplate{{Connection: "carto_dw", Source: ReferenceSource, Dialect: BigQuery}},
		AllowedAPIs:     []string{"maps"},
		BoundParameters: map[string]string{ReferenceParameter: Placeholder},
	}
}

// Validate reports every problem of t at once.
func (t Template) Validate() []error {
	var errs []error
	if len(t.Grants) == 0 {
		errs = append(errs, errors.New("at least one grant is required"))
	}
	for i, g := range t.Grants {
		if strings.TrimSpace(g.Connection) == "" {
			errs = append(errs, fmt.Errorf("grant %d: connection is required", i+1))
		}
		if strings.TrimSpace(g.Source) == "" {
			errs = append(errs, fmt.Errorf("grant %d: source is required", i+1))
		}
		if g.Dialect != "" && !g.Dialect.Valid() {
			errs = append(errs, fmt.Errorf("grant %d: unknown dialect %q (known: %v)", i+1, g.Dialect, Dialects))
		}
		if rest := strings.ReplaceAll(g.Source, Placeholder, ""); strings.Contains(rest, "{{") {
			errs = append(errs, fmt.Errorf("grant %d: unknown placeholder in source (only %s is supported)", i+1, Placeholder))
		}
		switch has := strings.Contains(g.Source, Placeholder); {
		case !has && !g.Shared && strings.TrimSpace(g.Source) != "":
			errs = append(errs, fmt.Errorf("grant %d: its source has no %s, so every member of every group it applies to reads the same rows: write %s where the group's value goes, or set shared: true on the grant if that is meant", i+1, Placeholder, Placeholder))
		case has && g.Shared:
			errs = append(errs, fmt.Errorf("grant %d: shared: true, but its source holds %s, which makes its rows each group's own", i+1, Placeholder))
		}
	}
	if len(t.AllowedAPIs) == 0 {
		errs = append(errs, fmt.Errorf("allowed_apis must name at least one of %v", knownAPIs))
	}
	for _, a := range t.AllowedAPIs {
		if !slices.Contains(knownAPIs, a) {
			errs = append(errs, fmt.Errorf("allowed_apis: unknown API %q (known: %v)", a, knownAPIs))
		}
	}
	for _, r := range t.Referers {
		if err := checkOrigin(r); err != nil {
			errs = append(errs, fmt.Errorf("referer %q: %w", r, err))
		}
	}
	if t.TokenTTL != 0 && (t.TokenTTL < MinTokenTTL || t.TokenTTL > MaxTokenTTL) {
		errs = append(errs, fmt.Errorf("token_ttl %s is outside [%s, %s]", t.TokenTTL, MinTokenTTL, MaxTokenTTL))
	}
	return append(errs, t.validateBound()...)
}

// checkOrigin accepts what CARTO matches a referer against: a bare origin. A
// trailing slash or path makes CARTO refuse every request, silently.
func checkOrigin(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("must be an origin such as https://app.example.com")
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("must be a bare origin, without path or trailing slash")
	}
	return nil
}

// Grant is one rendered grant, as sent to CARTO.
type Grant struct {
	Connection string
	Source     string
}

// Policy is a group's rendered policy: exactly what a token is minted with.
type Policy struct {
	Group       string
	Grants      []Grant  // sorted, unique
	AllowedAPIs []string // sorted, unique
	Referers    []string // sorted, unique
	TokenTTL    time.Duration
	// Templates are the grants as a frontend may write them, with bound
	// parameters in place of the group; empty without BoundParameters.
	// They grant nothing themselves: Bind turns one into its grant.
	Templates []QueryTemplate
	// Hash is the canonical hash of Grants, AllowedAPIs and Referers (not of the
	// lifetime, which changes no permission). Tokens are cached per group+Hash.
	Hash string
}

// Render binds group into t.
func (t Template) Render(group string) (Policy, error) {
	p := Policy{Group: group, TokenTTL: t.TokenTTL}
	if p.TokenTTL == 0 {
		p.TokenTTL = DefaultTokenTTL
	}
	for _, g := range t.Grants {
		src := g.Source
		if strings.Contains(src, Placeholder) {
			d := g.Dialect
			if d == "" {
				d = BigQuery
			}
			lit, err := Literal(d, group)
			if err != nil {
				return Policy{}, fmt.Errorf("render group into grant on %s: %w", g.Connection, err)
			}
			src = strings.ReplaceAll(src, Placeholder, lit)
		}
		p.Grants = append(p.Grants, Grant{Connection: g.Connection, Source: src})
		p.Templates = append(p.Templates, t.templatesOf(g, src)...)
	}
	p.canonicalize(t.AllowedAPIs, t.Referers)
	return p, nil
}

// New returns the policy of a token minted for key with exactly these
// grants, APIs and referers (the broker's own tokens, such as those that run
// named queries), sorted and hashed as rendered policies are.
func New(key string, grants []Grant, apis, referers []string, ttl time.Duration) Policy {
	p := Policy{Group: key, Grants: slices.Clone(grants), TokenTTL: ttl}
	if p.TokenTTL == 0 {
		p.TokenTTL = DefaultTokenTTL
	}
	p.canonicalize(apis, referers)
	return p
}

// canonicalize sorts and dedupes the permissions, and hashes them.
func (p *Policy) canonicalize(apis, referers []string) {
	slices.SortFunc(p.Grants, func(a, b Grant) int {
		if c := strings.Compare(a.Connection, b.Connection); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	p.Grants = slices.Compact(p.Grants)
	p.AllowedAPIs = sortedUnique(apis)
	p.Referers = sortedUnique(referers)
	p.Hash = hashOf(*p)
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// hashOf is SHA-256 over a versioned, length-prefixed encoding of the sorted
// permissions, so no two different policies share an encoding (a NUL or a
// separator inside a source cannot shift a boundary).
func hashOf(p Policy) string {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s", len(s), s) }
	field("tokenbroker.policy.v1")
	fmt.Fprintf(h, "grants=%d;", len(p.Grants))
	for _, g := range p.Grants {
		field(g.Connection)
		field(g.Source)
	}
	fmt.Fprintf(h, "apis=%d;", len(p.AllowedAPIs))
	for _, a := range p.AllowedAPIs {
		field(a)
	}
	fmt.Fprintf(h, "referers=%d;", len(p.Referers))
	for _, r := range p.Referers {
		field(r)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Set holds the policies of all groups: per-group templates and a default for
// groups without one. Rendered policies are computed once per group and reused,
// so the hot path renders nothing.
type Set struct {
	fallback *Template
	rendered map[string]Policy // named groups, rendered by NewSet
	// byDefault memoises groups rendered from fallback. With an external
	// identity provider the groups are not known in advance; they are still
	// few and come from a trusted issuer, so the memo needs no bound.
	byDefault sync.Map // group -> Policy
}

// SetConfig configures a Set.
type SetConfig struct {
	// Groups maps the groups named in the configuration to their templates.
	Groups map[string]Template
	// Default is the template of the groups not in Groups; nil means that
	// they have no policy.
	Default *Template
}

// NewSet validates the templates, reporting every problem at once, and
// renders one policy per named group.
func NewSet(cfg SetConfig) (*Set, error) {
	perGroup, fallback := cfg.Groups, cfg.Default
	s := &Set{fallback: fallback, rendered: make(map[string]Policy, len(perGroup))}
	var errs []error
	for _, g := range slices.Sorted(maps.Keys(perGroup)) {
		t := perGroup[g]
		for _, err := range t.Validate() {
			errs = append(errs, fmt.Errorf("group %q: %w", g, err))
		}
		if len(errs) > 0 {
			continue
		}
		p, err := t.Render(g)
		if err != nil {
			errs = append(errs, fmt.Errorf("group %q: %w", g, err))
			continue
		}
		s.rendered[g] = p
	}
	if fallback != nil {
		for _, err := range fallback.Validate() {
			errs = append(errs, fmt.Errorf("default policy: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// For returns the rendered policy of group.
func (s *Set) For(group string) (Policy, error) {
	if p, ok := s.rendered[group]; ok {
		return p, nil
	}
	if s.fallback == nil {
		return Policy{}, fmt.Errorf("%w %q", ErrNoPolicy, group)
	}
	if p, ok := s.byDefault.Load(group); ok {
		return p.(Policy), nil
	}
	p, err := s.fallback.Render(group)
	if err != nil {
		return Policy{}, err
	}
	s.byDefault.Store(group, p)
	return p, nil
}
