// Package store is the state the broker's subsystems keep: the CARTO tokens
// the token cache minted, revoked sessions, the login guard's and the quota
// guards' counters, shared secrets (the session signing keys, the CARTO OAuth
// token, CARTO's pauses), the locks that keep replicas from doing one thing
// twice, and the replica feed (Watcher) that tells every replica of another's
// evictions and revocations. Store is the contract; memstore (process
// memory), boltstore (one bbolt file) and redisstore (Redis, shared by
// replicas) implement it, all held to one conformance suite (storetest).
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Key identifies what a token grants: a group under one policy. A policy
// change gives a new hash, hence a new key, so an old token is never served
// for new permissions.
type Key struct {
	Group      string
	PolicyHash string
}

// String encodes the key unambiguously (the group is length-prefixed: a
// group may hold any byte), for flight and lock names.
func (k Key) String() string { return strconv.Itoa(len(k.Group)) + ":" + k.Group + "/" + k.PolicyHash }

// Entry is one API access token the broker minted.
type Entry struct {
	Key       Key
	Token     string
	CreatedAt time.Time
	ExpiresAt time.Time
	// RefreshAt is when a background refresh should replace the token, about
	// half-way through its life (with jitter, so keys minted together do not
	// refresh together).
	RefreshAt time.Time
}

// TokenID is how a store indexes a token: its SHA-256, so no store needs the
// token value itself as a key.
func TokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Secret is a shared credential with a lifetime: the CARTO OAuth token, which
// every replica uses and only one fetches.
type Secret struct {
	Value     []byte
	Obtained  time.Time
	ExpiresAt time.Time
}

// Lock is a held lock. Only its owner can extend or release it.
type Lock interface {
	// Extend pushes the expiry to ttl from now; ErrLockLost if the lock is
	// no longer this owner's.
	Extend(ctx context.Context, ttl time.Duration) error
	// Release frees the lock if this owner still holds it, and does nothing
	// otherwise: a slow owner cannot release a lock that passed to another.
	Release(ctx context.Context) error
}

// Store persists entries, revoked sessions and shared secrets, and provides
// the locks and counters that keep replicas from minting twice. Every method
// is safe for concurrent use; times are kept to the millisecond at least.
// Failures to reach the backend wrap ErrUnavailable.
type Store interface {
	// Current returns the unexpired entry served for key, if any.
	Current(ctx context.Context, key Key) (Entry, bool, error)
	// Put records a newly minted entry and makes it current for its key. An
	// entry it replaces stays known (ByToken, Entries) until it expires.
	Put(ctx context.Context, e Entry) error
	// ByToken returns the unexpired entry holding token, current or replaced.
	ByToken(ctx context.Context, token string) (Entry, bool, error)
	// Remove forgets the entry holding token (a no-op if unknown); a key
	// whose current entry it was has none afterwards. Shared stores tell the
	// other replicas (EventEvicted).
	Remove(ctx context.Context, token string) error
	// Entries returns every unexpired entry, current or replaced.
	Entries(ctx context.Context) ([]Entry, error)

	// RevokeSession records that session id is revoked until the given
	// time, after which the session has expired anyway. Shared stores tell
	// the other replicas (EventSessionRevoked).
	RevokeSession(ctx context.Context, id string, until time.Time) error
	// RevokedSessions returns every revocation not yet past its time.
	RevokedSessions(ctx context.Context) (map[string]time.Time, error)

	// Secret returns the unexpired secret stored under name.
	Secret(ctx context.Context, name string) (Secret, bool, error)
	// PutSecret stores a secret under name until its ExpiresAt.
	PutSecret(ctx context.Context, name string, s Secret) error

	// TryLock takes the lock name for ttl, or returns ErrLocked at once if
	// another owner holds it. A holder that dies loses the lock at expiry.
	TryLock(ctx context.Context, name string, ttl time.Duration) (Lock, error)
	// Count adds delta to the counter name in the fixed window (of length
	// window) that contains at, and returns the window's count; delta 0
	// reads it. Counters limit token creations and failed logins.
	Count(ctx context.Context, name string, at time.Time, window time.Duration, delta int64) (int64, error)

	// Close releases the store's resources.
	Close() error
}
