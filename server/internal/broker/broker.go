// Package broker is the TokenBroker service's domain logic: sign a user in,
// issue the CARTO API access token of the caller's group, revoke a session or
// a token. It depends on auth (who is calling), policy (what a group may
// read), tokencache (minted tokens and revoked sessions) and carto (through
// the tokencache.Upstream adapter in this package), and on no transport: the
// api package adapts it to gRPC and maps its errors to status codes.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

var (
	// ErrInvalidArgument wraps a description of a malformed request.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrPermissionDenied wraps a description of a forbidden request.
	ErrPermissionDenied = errors.New("permission denied")
)

// UserStore checks credentials.
type UserStore interface {
	Authenticate(ctx context.Context, username, password string) (auth.User, error)
}

// SessionIssuer signs session tokens.
type SessionIssuer interface {
	Issue(ctx context.Context, u auth.User) (token string, expiresAt time.Time, err error)
}

// Policies gives a group's rendered policy.
type Policies interface {
	For(group string) (policy.Policy, error)
}

// Config wires a Broker.
type Config struct {
	Users      UserStore
	Sessions   SessionIssuer
	Policies   Policies
	Cache      *tokencache.Cache
	APIBaseURL string // the CARTO API base URL tokens are valid for
	Logger     *slog.Logger
}

// Broker implements the TokenBroker operations.
type Broker struct {
	cfg Config
}

// New returns a Broker.
func New(cfg Config) *Broker {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Broker{cfg: cfg}
}

// Session is a signed-in user's session token.
type Session struct {
	Token     string
	ExpiresAt time.Time
	Group     string
}

// Login checks credentials and issues a session token.
func (b *Broker) Login(ctx context.Context, username, password string) (Session, error) {
	if username == "" || password == "" {
		return Session{}, fmt.Errorf("%w: username and password are required", ErrInvalidArgument)
	}
	u, err := b.cfg.Users.Authenticate(ctx, username, password)
	if err != nil {
		return Session{}, err
	}
	tok, exp, err := b.cfg.Sessions.Issue(ctx, u)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, ExpiresAt: exp, Group: u.Group}, nil
}

// IssuedToken is a CARTO API access token and what it grants.
type IssuedToken struct {
	Token      string
	ExpiresAt  time.Time
	Policy     policy.Policy
	APIBaseURL string
	Minted     bool // minted for this call rather than served from the cache
}

// IssueCartoToken returns the token of the caller's group. group, when not
// empty, must be the caller's own.
func (b *Broker) IssueCartoToken(ctx context.Context, p auth.Principal, group string) (IssuedToken, error) {
	if group != "" && group != p.Group {
		return IssuedToken{}, fmt.Errorf("%w: a session can only obtain its own group's token", ErrPermissionDenied)
	}
	pol, err := b.cfg.Policies.For(p.Group)
	if err != nil {
		return IssuedToken{}, err
	}
	e, minted, err := b.cfg.Cache.Get(ctx, tokencache.Key{Group: p.Group, PolicyHash: pol.Hash}, pol.TokenTTL)
	if err != nil {
		return IssuedToken{}, err
	}
	return IssuedToken{Token: e.Token, ExpiresAt: e.ExpiresAt, Policy: pol, APIBaseURL: b.cfg.APIBaseURL, Minted: minted}, nil
}

// RevokeSession revokes the session the caller is authenticated with, until
// the session would have expired.
func (b *Broker) RevokeSession(ctx context.Context, p auth.Principal) (time.Time, error) {
	if p.SessionID == "" {
		return time.Time{}, fmt.Errorf("%w: the caller is not authenticated with a session", ErrInvalidArgument)
	}
	if err := b.cfg.Cache.RevokeSession(ctx, p.SessionID, p.SessionExpiry); err != nil {
		return time.Time{}, fmt.Errorf("record session revocation: %w", err)
	}
	b.cfg.Logger.InfoContext(ctx, "session revoked", "subject", p.Subject, "group", p.Group)
	return p.SessionExpiry, nil
}

// RevokeCartoToken deletes a token the broker issued to the caller's group, at
// CARTO and in the cache. Any other token gets tokencache.ErrNotFound.
func (b *Broker) RevokeCartoToken(ctx context.Context, p auth.Principal, token string) (time.Time, error) {
	if token == "" {
		return time.Time{}, fmt.Errorf("%w: carto_token is empty", ErrInvalidArgument)
	}
	e, err := b.cfg.Cache.Revoke(ctx, p.Group, token)
	if err != nil {
		return time.Time{}, err
	}
	b.cfg.Logger.InfoContext(ctx, "CARTO token revoked", "subject", p.Subject, "group", p.Group)
	return e.ExpiresAt, nil
}
