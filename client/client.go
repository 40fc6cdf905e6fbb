package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
)

// Defaults of [Config].
const (
	// DefaultRenewBefore is how long before its expiry a cached CARTO token
	// is replaced when Config.RenewBefore is zero (or half of the token's
	// remaining life when it was received, if that is shorter).
	DefaultRenewBefore = 10 * time.Minute
	// DefaultMaxRetries is how many times a call that failed UNAVAILABLE is
	// retried when Config.MaxRetries is zero.
	DefaultMaxRetries = 3
)

// Backoff between retries: exponential with full jitter.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 2 * time.Second
)

// sessionMargin: a session from Login with less than this left is replaced
// by a new login before a call, rather than sent to fail.
const sessionMargin = 30 * time.Second

// Config configures a [Client].
type Config struct {
	// Addr is the host:port of the broker's gRPC port. Required.
	Addr string
	// TLS, when set, secures the connection: set RootCAs to verify the
	// broker, and Certificates to identify a service by its client
	// certificate (mTLS). Nil means plaintext, for loopback and development.
	TLS *tls.Config
	// Token is a bearer token to send with every call: a token of the
	// company's identity provider, or a broker session. It cannot be renewed
	// by the client. Exclusive with Username and Password.
	Token string
	// Username and Password, when set, let the client log in (on the first
	// call that needs a session, or with Login) and log in again when the
	// session expires. Both or neither.
	Username, Password string
	// Group is the group to ask CARTO tokens for. Services must set it; users
	// may leave it empty (they always get their own group).
	Group string
	// RenewBefore: a cached CARTO token is replaced when less than this is
	// left of its life. Zero means DefaultRenewBefore, or half the token's
	// remaining life when it was received if that is shorter. Negative is
	// refused.
	RenewBefore time.Duration
	// MaxRetries is how many times a call that failed UNAVAILABLE is
	// retried. Zero means DefaultMaxRetries; negative means none. Retries
	// back off exponentially with full jitter from 100 ms, capped at 2 s, and
	// wait at least what a `retry-after` response header says; a retry that
	// could not start before the deadline of the caller's context is not
	// made (the last error is returned at once).
	MaxRetries int
	// DialOptions are added after the client's own (transport credentials),
	// for example interceptors.
	DialOptions []grpc.DialOption
}

// Client is a client of TokenBroker. Create it with [New]; it is safe for
// concurrent use.
type Client struct {
	conn        *grpc.ClientConn
	rpc         tokenbrokerv1.TokenBrokerClient
	username    string
	password    string
	group       string
	renewBefore time.Duration // 0: the default rule
	maxRetries  int

	mu      sync.Mutex
	session Session // the bearer; zero Token: none
	login   *flight[Session]
	carto   CartoToken
	cartoAt time.Time // when carto was received
	cartoGe uint64    // bumped when the cached CARTO token is forgotten
	issue   *flight[CartoToken]
}

// New returns a client of the broker at cfg.Addr. It does not connect: the
// connection is made on the first call (grpc.NewClient), and a client with a
// Username logs in on its first call that needs a session. ctx is not kept;
// New fails if it is already done. Invalid options are reported as errors
// (not statuses).
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Addr == "":
		return nil, errors.New("client: Config.Addr is required")
	case (cfg.Username == "") != (cfg.Password == ""):
		return nil, errors.New("client: Config.Username and Config.Password go together")
	case cfg.Token != "" && cfg.Username != "":
		return nil, errors.New("client: Config.Token and Config.Username are exclusive")
	case cfg.RenewBefore < 0:
		return nil, errors.New("client: Config.RenewBefore is negative")
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, cfg.DialOptions...)
	conn, err := grpc.NewClient(cfg.Addr, dial...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	retries := cfg.MaxRetries
	switch {
	case retries == 0:
		retries = DefaultMaxRetries
	case retries < 0:
		retries = 0
	}
	return &Client{
		conn:        conn,
		rpc:         tokenbrokerv1.NewTokenBrokerClient(conn),
		username:    cfg.Username,
		password:    cfg.Password,
		group:       cfg.Group,
		renewBefore: cfg.RenewBefore,
		maxRetries:  retries,
		session:     Session{Token: cfg.Token},
	}, nil
}

// Close closes the connection. Calls in progress fail, and later calls fail
// with CANCELED.
func (c *Client) Close() error {
	return c.conn.Close()
}

// Login signs in with Config.Username and Config.Password and keeps the
// session for the client's later calls (replacing the one it had).
// Concurrent logins share one request. It fails with FAILED_PRECONDITION
// when the client has no username.
func (c *Client) Login(ctx context.Context) (Session, error) {
	if c.username == "" {
		return Session{}, status.Error(codes.FailedPrecondition, "client: Login needs Config.Username and Config.Password")
	}
	return share(ctx, &c.mu, &c.login, nil, c.doLogin)
}

// doLogin runs one Login RPC (with retries) and keeps its session.
func (c *Client) doLogin(ctx context.Context) (Session, error) {
	var resp *tokenbrokerv1.LoginResponse
	err := c.retry(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.rpc.Login(ctx, &tokenbrokerv1.LoginRequest{Username: c.username, Password: c.password}, opts...)
		return err
	})
	if err != nil {
		return Session{}, err
	}
	s := Session{Token: resp.GetToken(), Group: resp.GetGroup()}
	if resp.GetExpiresAt() != nil {
		s.ExpiresAt = resp.GetExpiresAt().AsTime()
	}
	c.mu.Lock()
	c.session = s
	c.mu.Unlock()
	return s, nil
}

// bearer returns the session to call with, logging in first when the client
// has a username and no usable session. A zero Session means no bearer.
func (c *Client) bearer(ctx context.Context) (Session, error) {
	if c.username == "" {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.session, nil
	}
	usable := func() (Session, bool) {
		s := c.session
		return s, s.Token != "" && (s.ExpiresAt.IsZero() || time.Until(s.ExpiresAt) > sessionMargin)
	}
	return share(ctx, &c.mu, &c.login, usable, c.doLogin)
}

// dropSession forgets the session if it still is tok.
func (c *Client) dropSession(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session.Token == tok {
		c.session = Session{}
	}
}

// CartoToken returns the CARTO API access token of the client's group. It is
// cached: the broker is asked again only when there is none, or when less
// than the renewal margin (Config.RenewBefore) is left of its life.
// Concurrent callers share one request; a caller whose context ends stops
// waiting without failing the others.
func (c *Client) CartoToken(ctx context.Context) (CartoToken, error) {
	t, err := share(ctx, &c.mu, &c.issue, c.cachedCarto, c.doIssue)
	return t.clone(), err // callers may change their copy's slices
}

// cachedCarto reports the cached CARTO token if it is not due for renewal.
// c.mu is held.
func (c *Client) cachedCarto() (CartoToken, bool) {
	t := c.carto
	if t.Token == "" || t.ExpiresAt.IsZero() {
		return CartoToken{}, false
	}
	margin := c.renewBefore
	if margin == 0 {
		margin = min(DefaultRenewBefore, t.ExpiresAt.Sub(c.cartoAt)/2)
	}
	if time.Until(t.ExpiresAt) <= margin {
		return CartoToken{}, false
	}
	return t, true
}

// doIssue runs one IssueCartoToken (with retries and re-login) and caches
// its token unless the cache was cleared meanwhile.
func (c *Client) doIssue(ctx context.Context) (CartoToken, error) {
	c.mu.Lock()
	gen := c.cartoGe
	c.mu.Unlock()
	var resp *tokenbrokerv1.IssueCartoTokenResponse
	err := c.call(ctx, true, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.rpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{Group: c.group}, opts...)
		return err
	})
	if err != nil {
		return CartoToken{}, err
	}
	t := cartoToken(resp)
	c.mu.Lock()
	if c.cartoGe == gen {
		c.carto, c.cartoAt = t, time.Now()
	}
	c.mu.Unlock()
	return t, nil
}

// forgetCarto drops the cached CARTO token when match says so. c.mu is held.
func (c *Client) forgetCarto(match func(CartoToken) bool) {
	if match(c.carto) {
		c.carto = CartoToken{}
		c.cartoGe++
	}
}

// Revoke revokes target:
//
//   - [RevokeSession]: the client's session (a logout). The client forgets
//     the session and its cached CARTO token; a client with a Username logs
//     in again on its next call, one with Config.Token calls without a
//     bearer afterwards. FAILED_PRECONDITION when it has no session.
//   - [RevokeCartoToken]: a CARTO token issued to the caller's group; the
//     client forgets it if it is the cached one, so the next CartoToken asks
//     for a new one.
//   - [RevokeGroup]: every CARTO token of a group (admins only); the cached
//     token is forgotten if it is of that group.
func (c *Client) Revoke(ctx context.Context, target RevokeTarget) (RevokeResult, error) {
	req := &tokenbrokerv1.RevokeTokenRequest{}
	switch target.kind {
	case revokeSession:
		req.Target = &tokenbrokerv1.RevokeTokenRequest_Session{Session: true}
	case revokeCarto:
		if target.value == "" {
			return RevokeResult{}, status.Error(codes.InvalidArgument, "client: RevokeCartoToken needs a token")
		}
		req.Target = &tokenbrokerv1.RevokeTokenRequest_CartoToken{CartoToken: target.value}
	case revokeGroup:
		if target.value == "" {
			return RevokeResult{}, status.Error(codes.InvalidArgument, "client: RevokeGroup needs a group")
		}
		req.Target = &tokenbrokerv1.RevokeTokenRequest_Group{Group: target.value}
	default:
		return RevokeResult{}, status.Error(codes.InvalidArgument, "client: no revoke target: use RevokeSession, RevokeCartoToken or RevokeGroup")
	}
	var resp *tokenbrokerv1.RevokeTokenResponse
	rpc := func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.rpc.RevokeToken(ctx, req, opts...)
		return err
	}
	var err error
	if target.kind == revokeSession {
		// The session as it is: never log in just to log out.
		c.mu.Lock()
		sess := c.session
		c.mu.Unlock()
		if sess.Token == "" {
			return RevokeResult{}, status.Error(codes.FailedPrecondition, "client: no session to revoke")
		}
		if err = c.retry(ctx, rpc, withBearer(sess.Token)...); err == nil {
			c.mu.Lock()
			if c.session.Token == sess.Token {
				c.session = Session{}
			}
			c.forgetCarto(func(CartoToken) bool { return true })
			c.mu.Unlock()
		}
	} else if err = c.call(ctx, true, rpc); err == nil {
		c.mu.Lock()
		c.forgetCarto(func(t CartoToken) bool {
			if target.kind == revokeCarto {
				return t.Token == target.value
			}
			return t.Group == target.value
		})
		c.mu.Unlock()
	}
	if err != nil {
		return RevokeResult{}, err
	}
	r := RevokeResult{RevokedCount: int(resp.GetRevokedCount())}
	if resp.GetRevokedUntil() != nil {
		r.RevokedUntil = resp.GetRevokedUntil().AsTime()
	}
	return r, nil
}

// ListTokens lists the CARTO tokens the broker holds, of group only unless
// it is empty, with their values masked. Admins only: others get
// PERMISSION_DENIED.
func (c *Client) ListTokens(ctx context.Context, group string) ([]HeldToken, error) {
	var resp *tokenbrokerv1.ListTokensResponse
	err := c.call(ctx, true, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.rpc.ListTokens(ctx, &tokenbrokerv1.ListTokensRequest{Group: group}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]HeldToken, 0, len(resp.GetTokens()))
	for _, t := range resp.GetTokens() {
		h := HeldToken{
			Group:       t.GetGroup(),
			MaskedToken: t.GetMaskedToken(),
			TokenID:     t.GetTokenId(),
			Policy:      t.GetPolicy(),
			Current:     t.GetCurrent(),
		}
		if t.GetCreatedAt() != nil {
			h.CreatedAt = t.GetCreatedAt().AsTime()
		}
		if t.GetExpiresAt() != nil {
			h.ExpiresAt = t.GetExpiresAt().AsTime()
		}
		out = append(out, h)
	}
	return out, nil
}

func cartoToken(r *tokenbrokerv1.IssueCartoTokenResponse) CartoToken {
	t := CartoToken{
		Token:       r.GetToken(),
		Group:       r.GetGroup(),
		AllowedAPIs: append([]string(nil), r.GetAllowedApis()...),
		Referers:    append([]string(nil), r.GetReferers()...),
		APIBaseURL:  r.GetApiBaseUrl(),
	}
	if t.Group == "" {
		t.Group = r.GetCity()
	}
	if r.GetExpiresAt() != nil {
		t.ExpiresAt = r.GetExpiresAt().AsTime()
	}
	for _, g := range r.GetGrants() {
		t.Grants = append(t.Grants, Grant{ConnectionName: g.GetConnectionName(), Source: g.GetSource()})
	}
	return t
}
