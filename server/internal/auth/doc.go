// Package auth establishes who is calling: the broker's own users (a bcrypt
// user store), the session tokens it issues to them (JWTs verified strictly),
// and the Principal that carries the caller's identity through a request.
//
// It knows nothing of gRPC or HTTP: the transport extracts a bearer token and
// hands it to an Authenticator; the domain reads the Principal from the
// context. Errors are the sentinels below, mapped to status codes in one place
// by the API layer.
package auth

import "errors"

var (
	// ErrUnauthenticated wraps every reason a bearer token is refused.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrInvalidCredentials is the one answer to a failed login, whatever the
	// reason (unknown user or wrong password), so it reveals nothing.
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrRevocationUnavailable reports that the revocation list could not be
	// read. Callers fail closed: a token that might be revoked is not accepted.
	ErrRevocationUnavailable = errors.New("revocation list unavailable")
)
