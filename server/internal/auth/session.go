package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

// MinSecretLen is the shortest accepted HS256 secret: RFC 7518 §3.2 asks for a
// key at least as long as the hash output.
const MinSecretLen = 32

// maxTokenLen bounds what is handed to any JWT parser. A session token is a
// few hundred bytes, an IdP's a few kilobytes; anything far larger is refused
// before any decoding.
const maxTokenLen = 16 << 10

// Revocations answers whether a session id has been revoked.
type Revocations interface {
	Revoked(ctx context.Context, sessionID string) (bool, error)
}

// RevocationsFunc adapts a function to Revocations.
type RevocationsFunc func(ctx context.Context, sessionID string) (bool, error)

// Revoked implements Revocations.
func (f RevocationsFunc) Revoked(ctx context.Context, id string) (bool, error) { return f(ctx, id) }

// SigningKey is a key sessions are signed with.
type SigningKey struct {
	ID     string // kid header; empty for the HS256 secret
	Method jwt.SigningMethod
	Key    any
}

// KeySource gives the keys sessions are signed and verified with.
type KeySource interface {
	// SigningKey returns the key new sessions are signed with.
	SigningKey(ctx context.Context) (SigningKey, error)
	// VerificationKey returns the key that signed a session with this kid
	// and algorithm, or an error if there is none.
	VerificationKey(ctx context.Context, kid, alg string) (any, error)
	// Algorithms lists every algorithm the source signs with: the only ones
	// a session may name.
	Algorithms() []string
}

// HMACKey is the KeySource of one HS256 secret (JWT_SECRET).
type HMACKey []byte

func (k HMACKey) SigningKey(context.Context) (SigningKey, error) {
	return SigningKey{Method: jwt.SigningMethodHS256, Key: []byte(k)}, nil
}

func (k HMACKey) VerificationKey(_ context.Context, kid, alg string) (any, error) {
	if kid != "" || alg != jwt.SigningMethodHS256.Alg() {
		return nil, errors.New("no such key")
	}
	return []byte(k), nil
}

func (k HMACKey) Algorithms() []string { return []string{jwt.SigningMethodHS256.Alg()} }

// SessionConfig configures session tokens.
type SessionConfig struct {
	Keys     KeySource
	Issuer   string        // iss claim written and required
	Audience string        // aud claim written and required
	TTL      time.Duration // lifetime of a session token
	Leeway   time.Duration // clock skew tolerated on exp, nbf and iat
	Now      func() time.Time
}

// Sessions issues and verifies the broker's session tokens: JWTs with iss,
// aud, sub, group, jti, iat and exp, signed by the configured KeySource.
type Sessions struct {
	cfg    SessionConfig
	parser *jwt.Parser
}

// sessionClaims is the session token payload.
type sessionClaims struct {
	Group string `json:"group"`
	Admin bool   `json:"admin,omitempty"`
	jwt.RegisteredClaims
}

// NewSessions validates cfg and returns a Sessions.
func NewSessions(cfg SessionConfig) (*Sessions, error) {
	var errs []error
	if cfg.Keys == nil {
		errs = append(errs, errors.New("session keys are required"))
	} else if k, ok := cfg.Keys.(HMACKey); ok && len(k) < MinSecretLen {
		errs = append(errs, fmt.Errorf("session secret is %d bytes, at least %d are required", len(k), MinSecretLen))
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		errs = append(errs, errors.New("session issuer and audience are required"))
	}
	if cfg.TTL <= 0 {
		errs = append(errs, errors.New("session TTL must be positive"))
	}
	if cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute {
		errs = append(errs, errors.New("session leeway must be between 0 and 5m"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sessions{
		cfg:    cfg,
		parser: strictParser(cfg.Keys.Algorithms(), cfg.Issuer, cfg.Audience, cfg.Leeway, cfg.Now),
	}, nil
}

// Issuer implements Verifier.
func (s *Sessions) Issuer() string { return s.cfg.Issuer }

// Issue signs a session token for a user.
func (s *Sessions) Issue(ctx context.Context, u User) (token string, expiresAt time.Time, err error) {
	key, err := s.cfg.Keys.SigningKey(ctx)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("session signing key: %w", err)
	}
	now := s.cfg.Now().Truncate(time.Second)
	expiresAt = now.Add(s.cfg.TTL)
	jti, err := newID()
	if err != nil {
		return "", time.Time{}, err
	}
	claims := sessionClaims{
		Group: u.Group,
		Admin: u.Admin,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   u.Username,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(expiresAt),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
	}
	t := jwt.NewWithClaims(key.Method, claims)
	if key.ID != "" {
		t.Header["kid"] = key.ID
	}
	token, err = t.SignedString(key.Key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign session token: %w", err)
	}
	return token, expiresAt, nil
}

// Verify implements Verifier: signature, algorithm, issuer, audience,
// expiry and issue time, and the required claims. Revocation is the
// Router's.
func (s *Sessions) Verify(ctx context.Context, bearer string) (Principal, error) {
	if len(bearer) > maxTokenLen {
		return Principal{}, refusal.New(ErrUnauthenticated, "session token too long")
	}
	var c sessionClaims
	_, err := s.parser.ParseWithClaims(bearer, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return s.cfg.Keys.VerificationKey(ctx, kid, t.Method.Alg())
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Principal{}, refusal.New(ErrUnauthenticated, "session token expired")
	case err != nil:
		return Principal{}, refusal.New(ErrUnauthenticated, "invalid session token")
	}
	if c.Subject == "" || c.Group == "" || c.ID == "" {
		return Principal{}, refusal.New(ErrUnauthenticated, "invalid session token")
	}
	return Principal{
		Kind:          KindUser,
		Subject:       c.Subject,
		Group:         c.Group,
		Admin:         c.Admin,
		SessionID:     c.ID,
		SessionExpiry: c.ExpiresAt.Time.Add(s.cfg.Leeway),
	}, nil
}

// strictParser is how every token the broker accepts is parsed: the
// algorithms are pinned by configuration, never taken from the token ("none"
// and any other are refused before a key is looked up), and iss, aud and
// exp are required, with a small symmetric leeway for clock skew.
//
// Decoding is strict: a segment whose last base64url character has unused
// bits set is refused, so a token has exactly one encoding and cannot be
// re-encoded into a different string that still verifies.
func strictParser(algs []string, issuer, audience string, leeway time.Duration, now func() time.Time) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithStrictDecoding(),
		jwt.WithValidMethods(algs),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	)
}

// newID returns 128 random bits in hex, for jti.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
