package transport

import (
	"strings"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
)

// Access says who may call a method.
type Access int

const (
	// Public methods need no credentials; the chain puts no caller in the
	// context.
	Public Access = iota + 1
	// Authenticated methods need a caller: a bearer token (a broker session
	// or an IdP token) or a registered service's client certificate. The
	// chain refuses anyone else with UNAUTHENTICATED.
	Authenticated
	// Admin methods need an authenticated caller, as Authenticated, who is
	// an admin. The chain authenticates; the broker refuses a caller who is
	// not an admin (PERMISSION_DENIED), so the refusal is audited like any
	// other. A test of package api checks that it does, for every Admin row.
	Admin
	// Optional methods take a caller when credentials come, checked as for
	// Authenticated (bad ones are refused), and run without one otherwise:
	// the named queries, of which the public ones need no credentials.
	Optional
)

func (a Access) String() string {
	switch a {
	case Public:
		return "public"
	case Authenticated:
		return "authenticated"
	case Admin:
		return "admin"
	case Optional:
		return "optional"
	}
	return "unknown"
}

// access says who may call each method of tokenbroker.v1.TokenBroker: the
// one place to read it. A test checks that every method of the service has
// exactly one row. Finer rules within a method are the broker's: who may
// revoke a CARTO token (CARTO_TOKEN_REVOKERS) or a whole group's (admins).
//
// Health checks and reflection, not listed, are infrastructure: public
// (probes and grpcurl have no credentials) and kept out of request logs.
var access = []struct {
	method string
	access Access
}{
	{tokenbrokerv1.TokenBroker_Login_FullMethodName, Public},
	{tokenbrokerv1.TokenBroker_IssueCartoToken_FullMethodName, Authenticated},
	{tokenbrokerv1.TokenBroker_RevokeToken_FullMethodName, Authenticated},
	{tokenbrokerv1.TokenBroker_ListTokens_FullMethodName, Admin},
	{tokenbrokerv1.TokenBroker_ListQueries_FullMethodName, Optional},
	{tokenbrokerv1.TokenBroker_RunQuery_FullMethodName, Optional},
	{tokenbrokerv1.TokenBroker_RunQueryGeoJSON_FullMethodName, Optional},
}

// AccessOf is who may call fullMethod. A method the table does not list
// needs an authenticated caller: the chain fails closed.
func AccessOf(fullMethod string) Access {
	if infrastructure(fullMethod) {
		return Public
	}
	for _, row := range access {
		if row.method == fullMethod {
			return row.access
		}
	}
	return Authenticated
}

// infrastructure reports health checks and reflection.
func infrastructure(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.")
}
