package broker

import (
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
)

// Mintable is every policy the broker mints tokens under: the groups', which
// it hands out, and the named queries' audiences', which it keeps to run
// the queries itself. The minting and reconciliation see both; issuing sees
// only the groups' (Config.Policies), so no caller can be issued a query
// token.
type Mintable struct {
	Groups  Policies
	Queries *namedquery.Set // nil: no named queries
}

// For returns the policy of a token key: a query audience's, or a group's.
func (m Mintable) For(key string) (policy.Policy, error) {
	if namedquery.IsAudienceKey(key) {
		return m.Queries.Policy(key)
	}
	return m.Groups.For(key)
}
