// Package auth establishes who is calling:
//
//   - users.go: the broker's own users, a store of bcrypt password hashes
//     (Users), and the login input bounds;
//   - session.go, sessionkeys.go: the session tokens the broker issues to
//     them, JWTs verified strictly, signed with one HS256 secret (HMACKey)
//     or with rotating Ed25519 or P-256 keys shared by the replicas
//     (RotatingKeys);
//   - idp.go: the tokens of the company's OIDC identity providers (IdP);
//   - services.go: internal services identified by their mTLS client
//     certificates (Services);
//   - router.go: the Router, which sends a bearer token to the verifier of
//     its issuer and refuses revoked sessions;
//   - guard.go: the login Guard against password guessing (lockouts per
//     username and per address);
//   - admission.go: the LoginLimiter, which bounds the password checks
//     running or waiting, per address and in all;
//   - principal.go: the Principal that carries the caller's identity through
//     a request, and the Authenticator interface.
//
// It knows nothing of gRPC and serves no HTTP (idp.go fetches the identity
// providers' discovery documents and keys): the transport extracts a bearer
// token or a client certificate and hands it over; the domain reads the
// Principal from the context. Errors are these sentinels, mapped to status
// codes in one place by the API layer: ErrUnauthenticated,
// ErrInvalidCredentials and ErrRevocationUnavailable (below),
// ErrTooManyAttempts (guard.go), ErrBusy (admission.go) and ErrNoGroup
// (idp.go).
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
