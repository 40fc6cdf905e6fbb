package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

// Verifier verifies the tokens of one issuer.
type Verifier interface {
	// Issuer is the iss claim of the tokens it verifies.
	Issuer() string
	// Verify checks a token fully (signature, algorithm, claims) and returns
	// its principal. Errors wrap ErrUnauthenticated.
	Verify(ctx context.Context, token string) (Principal, error)
}

// Router authenticates bearer tokens of several issuers: the broker's own
// sessions and the company's identity providers. It routes a token by its
// (unverified) iss claim to exactly one verifier, so a token is only ever
// checked against its own issuer's keys and rules, and then refuses revoked
// sessions, whatever issued them.
type Router struct {
	verifiers map[string]Verifier
	revoked   Revocations
	now       func() time.Time

	// verified remembers tokens already verified, by their SHA-256, so a
	// session presented again (every call of a browser or service) costs a
	// hash and a map lookup instead of a JSON decode and a signature check.
	// Revocation is still checked on every call. Entries live until the
	// token expires, at most verifiedTTL (so a key an IdP retires stops
	// counting soon), and the map is bounded by verifiedMax.
	mu       sync.RWMutex
	verified map[[sha256.Size]byte]verifiedEntry
}

type verifiedEntry struct {
	p     Principal
	until time.Time
}

const (
	verifiedTTL = 5 * time.Minute
	verifiedMax = 100_000
)

// RouterConfig configures a Router.
type RouterConfig struct {
	// Verifiers verify the tokens of their issuers, which must be distinct.
	Verifiers []Verifier
	// Revocations, if not nil, refuses revoked sessions, whatever their issuer.
	Revocations Revocations
	// Now is the clock of the verified tokens' cache; time.Now if nil.
	Now func() time.Time
}

// NewRouter returns a Router over cfg.Verifiers.
func NewRouter(cfg RouterConfig) (*Router, error) {
	r := &Router{verifiers: make(map[string]Verifier, len(cfg.Verifiers)), revoked: cfg.Revocations, now: cfg.Now,
		verified: make(map[[sha256.Size]byte]verifiedEntry)}
	if r.now == nil {
		r.now = time.Now
	}
	for _, v := range cfg.Verifiers {
		if _, dup := r.verifiers[v.Issuer()]; dup {
			return nil, fmt.Errorf("two token verifiers for issuer %q", v.Issuer())
		}
		r.verifiers[v.Issuer()] = v
	}
	return r, nil
}

// Authenticate implements Authenticator.
func (r *Router) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	if len(bearer) > maxTokenLen {
		return Principal{}, refusal.New(ErrUnauthenticated, "token too long")
	}
	p, err := r.verify(ctx, bearer)
	if err != nil {
		return Principal{}, err
	}
	if r.revoked != nil && p.SessionID != "" {
		revoked, err := r.revoked.Revoked(ctx, p.SessionID)
		if err != nil {
			return Principal{}, fmt.Errorf("%w: %w", ErrRevocationUnavailable, err)
		}
		if revoked {
			return Principal{}, refusal.New(ErrUnauthenticated, "session revoked")
		}
	}
	return p, nil
}

// verify returns the principal of a token, from the cache of verified
// tokens or by verifying it with its issuer's verifier.
func (r *Router) verify(ctx context.Context, bearer string) (Principal, error) {
	key := sha256.Sum256([]byte(bearer))
	now := r.now()
	r.mu.RLock()
	e, ok := r.verified[key]
	r.mu.RUnlock()
	if ok && now.Before(e.until) {
		return e.p, nil
	}
	iss, err := unverifiedIssuer(bearer)
	if err != nil {
		return Principal{}, err
	}
	v, ok := r.verifiers[iss]
	if !ok {
		return Principal{}, refusal.New(ErrUnauthenticated, "token from an unknown issuer")
	}
	p, err := v.Verify(ctx, bearer)
	if err != nil {
		return Principal{}, err
	}
	until := now.Add(verifiedTTL)
	if !p.SessionExpiry.IsZero() && p.SessionExpiry.Before(until) {
		until = p.SessionExpiry
	}
	r.mu.Lock()
	if len(r.verified) >= verifiedMax {
		// Full: start again rather than track ages; a miss costs one verify.
		clear(r.verified)
	}
	r.verified[key] = verifiedEntry{p: p, until: until}
	r.mu.Unlock()
	return p, nil
}

// unverifiedIssuer reads iss from a JWT's payload without verifying
// anything: it only chooses which verifier will.
func unverifiedIssuer(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", refusal.New(ErrUnauthenticated, "invalid token")
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return "", refusal.New(ErrUnauthenticated, "invalid token")
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Iss == "" {
		return "", refusal.New(ErrUnauthenticated, "invalid token")
	}
	return c.Iss, nil
}
