// Package tokencache keeps the CARTO API access tokens the broker has minted,
// one current token per (group, policy hash), and the list of revoked
// sessions. A Cache coalesces concurrent misses into one mint and refreshes
// tokens ahead of expiry in the background; a Store persists what it holds.
//
// Only the memory Store exists so far; persistent and shared stores implement
// the same interface.
package tokencache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// ErrNotFound reports a token the store does not hold for the asking group.
var ErrNotFound = errors.New("token not found")

// Key identifies what a token grants: a group under one policy. A policy
// change gives a new hash, hence a new key, so an old token is never served
// for new permissions.
type Key struct {
	Group      string
	PolicyHash string
}

func (k Key) String() string { return k.Group + "\x00" + k.PolicyHash }

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

// Store persists entries and revoked sessions. Every method is safe for
// concurrent use.
type Store interface {
	// Current returns the entry served for key, if any.
	Current(ctx context.Context, key Key) (Entry, bool, error)
	// Put records a newly minted entry and makes it current for its key. An
	// entry it replaces stays known (ByToken) until it expires.
	Put(ctx context.Context, e Entry) error
	// ByToken returns the unexpired entry holding token, current or replaced.
	ByToken(ctx context.Context, token string) (Entry, bool, error)
	// Remove forgets the entry holding token; a key whose current entry it was
	// has none afterwards.
	Remove(ctx context.Context, token string) error

	// RevokeSession records that session id is revoked until the given time,
	// after which the session has expired anyway.
	RevokeSession(ctx context.Context, id string, until time.Time) error
	// SessionRevoked reports whether session id is revoked.
	SessionRevoked(ctx context.Context, id string) (bool, error)
}
