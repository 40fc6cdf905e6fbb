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
)

// Principal is the authenticated caller of a request.
type Principal struct {
	Kind    Kind
	Subject string // the username
	Group   string // the group whose data the caller may read
	// SessionID and SessionExpiry identify the session token the call was
	// made with, so the session can be revoked (logout).
	SessionID     string
	SessionExpiry time.Time
}

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
