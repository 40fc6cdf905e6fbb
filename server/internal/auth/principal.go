package auth

import (
	"context"
	"time"
)

// Kind tells how a principal was authenticated.
type Kind string

// Principal kinds.
const (
	// KindUser is a user signed in through Login, holding a session token.
	KindUser Kind = "user"
	// KindIdP is a user of the company's identity provider, holding one of
	// its tokens.
	KindIdP Kind = "idp"
	// KindService is an internal service identified by its client
	// certificate (mTLS).
	KindService Kind = "service"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	Kind    Kind
	Subject string // the username, the IdP's subject, or the service's name
	// Group is the group whose data the caller may read. A service has none:
	// it names one of Groups per request.
	Group string
	// Groups lists the groups a service may ask for.
	Groups []string
	// Admin callers may revoke a whole group's tokens and list the tokens
	// the broker holds.
	Admin bool
	// SessionID identifies the session token the call was made with, so the
	// session can be revoked (logout). It is derived only from what the
	// token's signature covers, so no re-encoding of the token escapes it.
	SessionID string
	// SessionExpiry is the last moment the token is accepted: its exp plus
	// the clock-skew leeway of its verifier. A revocation must last until
	// then, or the token would be accepted again within the leeway.
	SessionExpiry time.Time
	// Claims are an IdP caller's top-level string claims (at most
	// MaxClaims, each at most MaxClaimLen bytes; longer ones are left
	// out), which named queries may bind parameters to. Nil for others.
	Claims map[string]string
}

// Bounds of the claims a Principal carries.
const (
	MaxClaims   = 64
	MaxClaimLen = 256
)

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of ctx, if a request was authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Authenticator turns a bearer token into a principal. It returns an error
// wrapping ErrUnauthenticated when the token is not acceptable.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (Principal, error)
}
