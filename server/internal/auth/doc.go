// Package auth establishes who is calling. It knows nothing of gRPC: the
// transport hands it a bearer token or a verified client certificate, and
// the domain reads the resulting Principal from the context.
//
// Callers, and the file that knows each kind:
//
//   - principal.go: the Principal a request carries (its Kind: user, idp or
//     service; subject, group, admin flag, session id and expiry), and the
//     Authenticator interface the transport calls.
//   - users.go: the broker's own users, bcrypt hashes in memory (Users), and
//     the login input bounds.
//   - session.go: the session tokens issued to them at login (Sessions),
//     JWTs parsed strictly, signed by a KeySource: one HS256 secret (HMACKey)
//     or RotatingKeys.
//   - sessionkeys.go, sessionkeyrotation.go, sessionkeyset.go: RotatingKeys,
//     Ed25519 or P-256 session keys that rotate, shared by the replicas
//     through a KeyStore and published as a JWKS; its reload and rotation;
//     the key set and its stored form.
//   - idp.go, idpclaims.go, idpdiscovery.go: the tokens of the company's OIDC
//     identity providers (IdP): verification against the keys the IdP
//     publishes; the group and admin claims; discovery and the URL rules
//     (https, or http to loopback only). This is the package's only network
//     access.
//   - services.go: internal services identified by their mTLS client
//     certificates (Services).
//   - router.go: the Router, the Authenticator of bearer tokens: it sends a
//     token to the Verifier of its issuer (Sessions or an IdP), remembers
//     verified tokens briefly, and refuses revoked sessions (Revocations).
//
// Logins, before a password is checked:
//
//   - admission.go: the LoginLimiter bounds the password checks running or
//     waiting, in all and per address, and sheds the rest at once.
//   - guard.go: the Guard locks a username or an address out after too many
//     failures in a window, counted in a Counter that all replicas share.
//
// What the replicas share (revoked sessions, login counters, the session key
// set) lives in the broker's state store; this package says what it needs
// as the interfaces Revocations, Counter and KeyStore, and imports no other
// package of the broker.
//
// Errors are these sentinels, which the API layer maps to status codes in
// one place: ErrUnauthenticated (wrapped by every refused token),
// ErrInvalidCredentials (a failed login, whatever the reason),
// ErrRevocationUnavailable (fail closed), ErrNoGroup (an authentic IdP token
// naming no usable group), ErrTooManyAttempts (a lockout, as a
// *LockoutError with its RetryAfter) and ErrBusy (a shed login, as a
// *BusyError with its RetryAfter). The first three are declared in doc.go.
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
