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
	"slices"
	"sort"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/flightcache"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
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
	// Queries are the named queries the broker runs itself with Runner
	// (nil: none).
	Queries *namedquery.Set
	Runner  QueryRunner
	// PublicQueriesPerMinute bounds the public queries one client address
	// runs without credentials (0: no bound).
	PublicQueriesPerMinute int
	// QueryCacheBytes bounds the named queries' result cache (0: no
	// cache); each query's cache_ttl says how long its results are kept.
	QueryCacheBytes int
	// QueryObserver, when set, is told how queries are answered.
	QueryObserver QueryObserver
	// OnQueryEvict, when set, is told of each result evicted for room.
	OnQueryEvict func()
	// Now is the clock of the result cache and of the public queries' rate
	// (time.Now when nil).
	Now func() time.Time
	// GatewayURL is the broker's CARTO gateway, when it serves one: the
	// API base URL of the groups whose policy has bound parameters.
	GatewayURL string
	Logger     *slog.Logger
	// Guard limits password guessing; nil means no limit.
	Guard *auth.Guard
	// Limiter bounds the password checks running and waiting; nil means
	// no bound.
	Limiter *auth.LoginLimiter
	// AdminsRevokeCartoTokens: only admins may revoke a CARTO token
	// (CARTO_TOKEN_REVOKERS=admins); otherwise a group's members may too.
	AdminsRevokeCartoTokens bool
}

// Broker implements the TokenBroker operations.
type Broker struct {
	cfg     Config
	public  *publicLimiter
	results *flightcache.Cache[result] // nil without QueryCacheBytes
}

// New returns a Broker.
func New(cfg Config) *Broker {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Broker{cfg: cfg, public: newPublicLimiter(cfg.PublicQueriesPerMinute)}
	if cfg.QueryCacheBytes > 0 {
		b.results = flightcache.New[result](flightcache.Config{MaxBytes: cfg.QueryCacheBytes, OnEvict: cfg.OnQueryEvict, Now: cfg.Now})
	}
	return b
}

// Session is a signed-in user's session token.
type Session struct {
	Token     string
	ExpiresAt time.Time
	Group     string
}

// Login checks credentials and issues a session token. addr is the
// client's address, for the per-address limits.
//
// The order is the defence: a login is admitted to the bounded queue of
// password checks (or shed at once), then reserves its attempt against the
// lockout counters (or is refused), and only then runs bcrypt. So a flood
// cannot queue without bound, and concurrent guesses cannot outrun the
// lockout.
func (b *Broker) Login(ctx context.Context, username, password, addr string) (Session, error) {
	if username == "" || password == "" {
		return Session{}, refusal.New(ErrInvalidArgument, "username and password are required")
	}
	// Before any work: a long password would be checked on its first 72
	// bytes only, and a long username costs every counter and log it meets.
	if len(username) > auth.MaxUsernameLen {
		return Session{}, refusal.Newf(ErrInvalidArgument, "username is longer than %d bytes", auth.MaxUsernameLen)
	}
	if len(password) > auth.MaxPasswordLen {
		return Session{}, refusal.Newf(ErrInvalidArgument, "password is longer than %d bytes, the most bcrypt uses", auth.MaxPasswordLen)
	}
	u, err := b.authenticate(ctx, username, password, addr)
	if err != nil {
		return Session{}, err
	}
	tok, exp, err := b.cfg.Sessions.Issue(ctx, u)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, ExpiresAt: exp, Group: u.Group}, nil
}

// authenticate checks the password within the login limits.
func (b *Broker) authenticate(ctx context.Context, username, password, addr string) (auth.User, error) {
	if l := b.cfg.Limiter; l != nil {
		release, err := l.Admit(ctx, addr)
		if err != nil {
			return auth.User{}, err
		}
		defer release()
	}
	var attempt *auth.Attempt
	if g := b.cfg.Guard; g != nil {
		// A locked-out username is refused before any password check, the
		// right password included, until the lockout ends.
		var err error
		if attempt, err = g.Reserve(ctx, username, addr); err != nil {
			return auth.User{}, err
		}
	}
	u, err := b.cfg.Users.Authenticate(ctx, username, password)
	if attempt == nil {
		return u, err
	}
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		// The reservation stays: it is the counted failure.
	case err == nil:
		if serr := attempt.Succeeded(ctx); serr != nil {
			b.cfg.Logger.WarnContext(ctx, "login failures not reset", "error", serr)
		}
	default: // the password was not checked
		if rerr := attempt.Release(ctx); rerr != nil {
			b.cfg.Logger.WarnContext(ctx, "login attempt not released", "error", rerr)
		}
	}
	return u, err
}

// IssuedToken is a CARTO API access token and what it grants.
type IssuedToken struct {
	Token      string
	ExpiresAt  time.Time
	Policy     policy.Policy
	APIBaseURL string
	Minted     bool // minted for this call rather than served from the cache
}

// IssueCartoToken returns the token of a group: a user's own (group, when
// not empty, must be it), or one a service is allowed (group is required).
func (b *Broker) IssueCartoToken(ctx context.Context, p auth.Principal, group string) (IssuedToken, error) {
	target, err := groupFor(p, group)
	if err != nil {
		return IssuedToken{}, err
	}
	pol, err := b.cfg.Policies.For(target)
	if err != nil {
		return IssuedToken{}, err
	}
	e, minted, err := b.cfg.Cache.Get(ctx, store.Key{Group: target, PolicyHash: pol.Hash}, pol.TokenTTL)
	if err != nil {
		return IssuedToken{}, err
	}
	base := b.cfg.APIBaseURL
	if b.cfg.GatewayURL != "" && len(pol.Templates) > 0 {
		base = b.cfg.GatewayURL
	}
	return IssuedToken{Token: e.Token, ExpiresAt: e.ExpiresAt, Policy: pol, APIBaseURL: base, Minted: minted}, nil
}

// groupFor is the group a caller obtains a token for. A user's session can
// never choose another group; a service only one its configuration lists.
func groupFor(p auth.Principal, group string) (string, error) {
	if p.Kind == auth.KindService {
		switch {
		case group == "":
			return "", refusal.Newf(ErrInvalidArgument, "a service must name the group it asks for (one of %v)", p.Groups)
		case !slices.Contains(p.Groups, group):
			return "", refusal.Newf(ErrPermissionDenied, "service %q may not obtain tokens of group %q", p.Subject, group)
		}
		return group, nil
	}
	if group != "" && group != p.Group {
		return "", refusal.New(ErrPermissionDenied, "a session can only obtain its own group's token")
	}
	return p.Group, nil
}

// RevokeSession revokes the session the caller is authenticated with, until
// the session would have expired.
func (b *Broker) RevokeSession(ctx context.Context, p auth.Principal) (time.Time, error) {
	if p.SessionID == "" {
		return time.Time{}, refusal.New(ErrInvalidArgument, "the caller is not authenticated with a session (a service's certificate cannot be revoked here)")
	}
	if err := b.cfg.Cache.RevokeSession(ctx, p.SessionID, p.SessionExpiry); err != nil {
		return time.Time{}, fmt.Errorf("record session revocation: %w", err)
	}
	return p.SessionExpiry, nil
}

// RevokeCartoToken deletes a token the broker issued to a group the caller
// may revoke (its own; a service's; any, for an admin), at CARTO and in the
// cache. Any other token gets tokencache.ErrNotFound. A group's token is
// shared by all its members and each revocation makes the next call mint, so
// members' revocations are counted against the group's budget (admins' are
// not), and AdminsRevokeCartoTokens leaves them to admins.
func (b *Broker) RevokeCartoToken(ctx context.Context, p auth.Principal, token string) (store.Entry, error) {
	if token == "" {
		return store.Entry{}, refusal.New(ErrInvalidArgument, "carto_token is empty")
	}
	if b.cfg.AdminsRevokeCartoTokens && !p.Admin {
		return store.Entry{}, refusal.New(ErrPermissionDenied, "only admins may revoke a CARTO token in this deployment")
	}
	return b.cfg.Cache.Revoke(ctx, token, tokencache.Revoker{
		May: func(g string) bool {
			return p.Admin || (p.Group != "" && g == p.Group) || slices.Contains(p.Groups, g)
		},
		Unlimited: p.Admin,
	})
}

// RevokeGroup deletes every token the broker holds for group. Admins only.
// It tries them all; the returned error reports those that failed.
func (b *Broker) RevokeGroup(ctx context.Context, p auth.Principal, group string) (revoked int, until time.Time, err error) {
	if !p.Admin {
		return 0, time.Time{}, refusal.New(ErrPermissionDenied, "only admins may revoke a whole group's tokens")
	}
	held, err := b.cfg.Cache.Held(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	var errs []error
	for _, h := range held {
		if h.Key.Group != group {
			continue
		}
		if err := b.cfg.Cache.Evict(ctx, h.Entry); err != nil {
			errs = append(errs, err)
			continue
		}
		revoked++
		if h.ExpiresAt.After(until) {
			until = h.ExpiresAt
		}
	}
	// The group's named-query results go too: whoever revokes a group's
	// access wants its data read afresh, if at all.
	if b.results != nil {
		b.results.Drop(namedquery.AudienceKey(namedquery.Caller{Group: group}))
	}
	if len(errs) > 0 {
		return revoked, until, fmt.Errorf("%d of the group's tokens not revoked: %w", len(errs), errors.Join(errs...))
	}
	return revoked, until, nil
}

// ListTokens lists the tokens the broker holds, of one group or all,
// ordered by group and expiry. Admins only.
func (b *Broker) ListTokens(ctx context.Context, p auth.Principal, group string) ([]tokencache.Held, error) {
	if !p.Admin {
		return nil, refusal.New(ErrPermissionDenied, "only admins may list the tokens the broker holds")
	}
	held, err := b.cfg.Cache.Held(ctx)
	if err != nil {
		return nil, err
	}
	if group != "" {
		held = slices.DeleteFunc(held, func(h tokencache.Held) bool { return h.Key.Group != group })
	}
	sort.Slice(held, func(i, j int) bool {
		if held[i].Key.Group != held[j].Key.Group {
			return held[i].Key.Group < held[j].Key.Group
		}
		return held[i].ExpiresAt.Before(held[j].ExpiresAt)
	})
	return held, nil
}
