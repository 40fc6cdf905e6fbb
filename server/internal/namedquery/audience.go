package namedquery

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tokenbroker/tokenbroker/server/internal/policy"
)

// The broker runs a group's named queries with a CARTO token it never hands
// out, whose grants are exactly those queries' SQL: CARTO binds their
// parameters, which the broker alone fills in. The token is cached, minted
// and reconciled as a group's are, under a key of its own: the audience's
// name behind a prefix that holds a control character, which no group may
// hold (policy.Literal refuses them, so such a group gets no token), so no
// caller can ever be issued a query token.
const audiencePrefix = "\x1fqueries\x1f"

// publicAudience names the audience of the public queries.
const publicAudience = "\x1fpublic"

// ErrNoQueries reports an audience that may run no named query.
var ErrNoQueries = errors.New("no named query for this audience")

// AudienceKey is the token key of the queries c may run: its group's, or
// the public ones for a caller without a group.
func AudienceKey(c Caller) string {
	if c.Group == "" {
		return audiencePrefix + publicAudience
	}
	return audiencePrefix + c.Group
}

// IsAudienceKey reports whether key names a query audience, not a group.
func IsAudienceKey(key string) bool { return strings.HasPrefix(key, audiencePrefix) }

// DescribeKey is key as an operator reads it (in token names and listings):
// a group, "queries/<group>" or "queries/public".
func DescribeKey(key string) string {
	rest, ok := strings.CutPrefix(key, audiencePrefix)
	switch {
	case !ok:
		return key
	case rest == publicAudience:
		return "queries/public"
	}
	return "queries/" + rest
}

// Policy is the token policy of the audience key names: the SQL of every
// query it may run, on their connections, through their APIs.
//
// Policies are built once per audience and kept: the audiences are the
// groups that run queries, few and of trusted origin (as policy.Set's).
func (s *Set) Policy(key string) (policy.Policy, error) {
	if s == nil {
		return policy.Policy{}, fmt.Errorf("%w %q", ErrNoQueries, DescribeKey(key))
	}
	if p, ok := s.policies.Load(key); ok {
		return p.(policy.Policy), nil
	}
	p, err := s.buildPolicy(key)
	if err != nil {
		return policy.Policy{}, err
	}
	s.policies.Store(key, p)
	return p, nil
}

func (s *Set) buildPolicy(key string) (policy.Policy, error) {
	rest, ok := strings.CutPrefix(key, audiencePrefix)
	if !ok {
		return policy.Policy{}, fmt.Errorf("%w %q", ErrNoQueries, DescribeKey(key))
	}
	c := Caller{Group: rest}
	if rest == publicAudience {
		c = Caller{}
	}
	var grants []policy.Grant
	var apis []string
	for _, q := range s.Visible(c) {
		if c.Group != "" && q.Public {
			continue // public queries run with the public audience's token
		}
		grants = append(grants, policy.Grant{Connection: q.Connection, Source: q.SQL})
		for _, a := range q.APIs {
			if !slices.Contains(apis, a) {
				apis = append(apis, a)
			}
		}
	}
	if len(grants) == 0 {
		return policy.Policy{}, fmt.Errorf("%w %q", ErrNoQueries, DescribeKey(key))
	}
	return policy.New(key, grants, apis, nil, 0), nil
}
