package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest accepted HS256 secret: RFC 7518 §3.2 asks for a
// key at least as long as the hash output.
const MinSecretLen = 32

// maxTokenLen bounds what is handed to the JWT parser. A session token is a few
// hundred bytes; anything far larger is refused before any decoding.
const maxTokenLen = 4096

// Revocations answers whether a session id has been revoked.
type Revocations interface {
	Revoked(ctx context.Context, sessionID string) (bool, error)
}

// SessionConfig configures session tokens.
type SessionConfig struct {
	Secret   []byte        // HS256 key, at least MinSecretLen bytes
	Issuer   string        // iss claim written and required
	Audience string        // aud claim written and required
	TTL      time.Duration // lifetime of a session token
	Leeway   time.Duration // clock skew tolerated on exp, nbf and iat
	Now      func() time.Time
	Revoked  Revocations // nil means nothing is ever revoked
}

// Sessions issues and verifies the broker's session tokens: HS256 JWTs with
// iss, aud, sub, group, jti, iat and exp.
type Sessions struct {
	cfg    SessionConfig
	parser *jwt.Parser
}

// sessionClaims is the session token payload.
type sessionClaims struct {
	Group string `json:"group"`
	jwt.RegisteredClaims
}

// NewSessions validates cfg and returns a Sessions.
func NewSessions(cfg SessionConfig) (*Sessions, error) {
	var errs []error
	if len(cfg.Secret) < MinSecretLen {
		errs = append(errs, fmt.Errorf("session secret is %d bytes, at least %d are required", len(cfg.Secret), MinSecretLen))
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
		cfg: cfg,
		// The algorithm is pinned: a token naming any other algorithm, "none"
		// included, is refused before its signature is looked at.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
		),
	}, nil
}

// Issue signs a session token for a user.
func (s *Sessions) Issue(u User) (token string, expiresAt time.Time, err error) {
	now := s.cfg.Now().Truncate(time.Second)
	expiresAt = now.Add(s.cfg.TTL)
	jti, err := newID()
	if err != nil {
		return "", time.Time{}, err
	}
	claims := sessionClaims{
		Group: u.Group,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   u.Username,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(expiresAt),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.cfg.Secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign session token: %w", err)
	}
	return token, expiresAt, nil
}

// Authenticate verifies a session token: signature, algorithm, issuer,
// audience, expiry and issue time, required claims, and revocation.
func (s *Sessions) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	if len(bearer) > maxTokenLen {
		return Principal{}, fmt.Errorf("%w: session token too long", ErrUnauthenticated)
	}
	var c sessionClaims
	_, err := s.parser.ParseWithClaims(bearer, &c, func(*jwt.Token) (any, error) { return s.cfg.Secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Principal{}, fmt.Errorf("%w: session token expired", ErrUnauthenticated)
	case err != nil:
		return Principal{}, fmt.Errorf("%w: invalid session token", ErrUnauthenticated)
	}
	if c.Subject == "" || c.Group == "" || c.ID == "" {
		return Principal{}, fmt.Errorf("%w: invalid session token", ErrUnauthenticated)
	}
	if s.cfg.Revoked != nil {
		revoked, err := s.cfg.Revoked.Revoked(ctx, c.ID)
		if err != nil {
			return Principal{}, fmt.Errorf("%w: %w", ErrRevocationUnavailable, err)
		}
		if revoked {
			return Principal{}, fmt.Errorf("%w: session revoked", ErrUnauthenticated)
		}
	}
	return Principal{
		Kind:          KindUser,
		Subject:       c.Subject,
		Group:         c.Group,
		SessionID:     c.ID,
		SessionExpiry: c.ExpiresAt.Time,
	}, nil
}

// newID returns 128 random bits in hex, for jti.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// RevocationsFunc adapts a function to Revocations.
type RevocationsFunc func(ctx context.Context, sessionID string) (bool, error)

// Revoked implements Revocations.
func (f RevocationsFunc) Revoked(ctx context.Context, id string) (bool, error) { return f(ctx, id) }
