package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

// ErrNoGroup reports an identity token that is authentic but names no group
// the broker can use: the group claim is missing, or none of its values
// matches GroupMatch. It does not wrap ErrUnauthenticated: the caller is
// known, just not allowed anything (the API layer maps it to
// PERMISSION_DENIED).
var ErrNoGroup = errors.New("the identity token carries no usable group")

// IdP defaults and bounds.
const (
	idpDefaultLeeway             = 30 * time.Second
	idpMaxLeeway                 = 5 * time.Minute
	idpDefaultRefreshInterval    = time.Hour
	idpDefaultUnknownKIDInterval = time.Minute
	idpDefaultHTTPTimeout        = 10 * time.Second
	idpDefaultGroupClaim         = "groups"

	// idpUnknownKIDWaitMax bounds what a token with an unknown kid costs its
	// request: the wait for the refetch limiter (a request that would wait
	// longer is refused at once) and the refetch itself, which keyfunc runs
	// under the same deadline. It is not 100 ms because a refetch from a
	// remote IdP (TLS handshake included) takes a few round trips, and a
	// refetch cut short would leave a rotated key unknown until the next one.
	idpUnknownKIDWaitMax = time.Second

	// idpMaxKIDLen: real kids (thumbprints, UUIDs, hex ids) are well under
	// 100 bytes. Anything longer is refused without a lookup, so garbage
	// kids do not use up the refetch allowance.
	idpMaxKIDLen = 256
)

// idpAlgorithms are the algorithms an IdP may be configured with. HMAC is
// absent on purpose: with only public-key algorithms allowed, a token that
// names HS256 is refused before any key is looked at, so a public key can
// never be used as an HMAC secret (key confusion, RFC 8725 §2.1).
var idpAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// IdPConfig configures one identity provider.
type IdPConfig struct {
	// Name is used in messages and logs; it defaults to Issuer.
	Name string
	// Issuer is required: the exact iss of its tokens. Discovery is at
	// Issuer+"/.well-known/openid-configuration" unless JWKSURL is set.
	Issuer string
	// JWKSURL is optional: set, discovery is skipped.
	JWKSURL string
	// Audience is required: aud must contain it (string or array form).
	Audience string
	// Algorithms lists the allowed algorithms, default ["RS256"]. Only
	// asymmetric ones (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA)
	// are accepted; an HS* here is a configuration error.
	Algorithms []string
	// GroupClaim is the dot path to the group claim, e.g. "groups" (the
	// default) or "realm_access.roles". The claim may be a string or a list
	// of strings; list elements that are not strings are ignored.
	GroupClaim string
	// GroupMatch is an optional regexp (unanchored, as Go's regexp is: write
	// ^ and $). The group is the first value, in order, that matches; if the
	// regexp has a capture group, the group is capture 1 (e.g.
	// "^carto-(.+)$"). A match that yields an empty group is skipped.
	// Without GroupMatch, a string claim is the group and a list's first
	// string element is.
	GroupMatch string
	// AdminClaim is an optional dot path; with AdminValue, the principal is
	// Admin when that claim (a string, or a list of strings) contains
	// AdminValue exactly. Both or neither must be set.
	AdminClaim string
	AdminValue string
	// Leeway is the clock skew tolerated on exp, nbf and iat: default 30s,
	// at most 5m. Zero means the default.
	Leeway time.Duration
	// RefreshInterval is the period of the background JWKS refresh, default
	// 1h.
	RefreshInterval time.Duration
	// UnknownKIDInterval allows at most one JWKS refetch for an unknown kid
	// per interval, default 1m, so random kids cannot turn the broker into
	// a fetch amplifier against the IdP.
	UnknownKIDInterval time.Duration
	// HTTPClient fetches discovery and the JWKS; default a client with a
	// 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives JWKS refresh failures and discovery warnings; default
	// slog.Default().
	Logger *slog.Logger
}

// IdP verifies the bearer tokens of one OIDC identity provider: signature
// against its published keys (looked up by kid), algorithm, issuer,
// audience, expiry, and the claims that make a Principal. It implements
// Verifier and is safe for concurrent use.
type IdP struct {
	name   string
	issuer string
	claimRules
	leeway time.Duration
	parser *jwt.Parser
	keys   keyfunc.Keyfunc
}

// NewIdP validates cfg (reporting every problem at once), performs discovery
// (the discovered issuer must equal cfg.Issuer exactly; its jwks_uri must be
// http or https), fetches the JWKS and starts its background refresh, which
// stops when ctx ends. An unreachable IdP is an error naming it: the broker
// does not start with an identity provider it cannot verify tokens of.
func NewIdP(ctx context.Context, cfg IdPConfig) (*IdP, error) {
	if cfg.Name == "" {
		cfg.Name = cfg.Issuer
	}
	p, err := newIdP(&cfg)
	if err != nil {
		return nil, fmt.Errorf("identity provider %q: %w", cfg.Name, err)
	}

	jwksURL := cfg.JWKSURL
	if jwksURL == "" {
		jwksURL, err = idpDiscover(ctx, &cfg)
		if err != nil {
			return nil, fmt.Errorf("identity provider %q: %w", cfg.Name, err)
		}
	}

	// The refresh goroutine keyfunc starts lives on kctx, which is cancelled
	// if NewIdP fails after starting it (a first fetch that fails).
	kctx, cancel := context.WithCancel(ctx)
	started := false
	defer func() {
		if !started {
			cancel()
		}
	}()
	noErrorOnFirstFetch := false
	logger, name := cfg.Logger, cfg.Name
	p.keys, err = keyfunc.NewDefaultOverrideCtx(kctx, []string{jwksURL}, keyfunc.Override{
		Client:                    cfg.HTTPClient,
		HTTPTimeout:               idpHTTPTimeout(cfg.HTTPClient),
		NoErrorReturnFirstHTTPReq: &noErrorOnFirstFetch,
		RateLimitWaitMax:          idpUnknownKIDWaitMax,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				logger.WarnContext(ctx, "identity provider JWKS refresh failed; keeping the keys already known",
					"idp", name, "url", u, "error", err)
			}
		},
		RefreshInterval:   cfg.RefreshInterval,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(cfg.UnknownKIDInterval), 1),
	})
	if err != nil {
		return nil, fmt.Errorf("identity provider %q: JWKS at %s: %w", cfg.Name, jwksURL, err)
	}
	started = true
	return p, nil
}

// Validate checks cfg without contacting the IdP, reporting every problem at
// once, so a configuration can be refused at load time.
func (cfg IdPConfig) Validate() error {
	_, err := newIdP(&cfg)
	return err
}

// newIdP validates cfg, fills in its defaults and builds everything but the
// key cache.
func newIdP(cfg *IdPConfig) (*IdP, error) {
	errs := idpCheckSources(cfg)
	claims, claimErrs := newClaimRules(cfg)
	errs = append(errs, claimErrs...)
	errs = append(errs, idpCheckIntervals(cfg)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: idpDefaultHTTPTimeout, CheckRedirect: idpCheckRedirect}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &IdP{
		name:       cfg.Name,
		issuer:     cfg.Issuer,
		claimRules: claims,
		leeway:     cfg.Leeway,
		// Only configured asymmetric algorithms: "none" and HS* are refused
		// before any key lookup or network access.
		parser: strictParser(cfg.Algorithms, cfg.Issuer, cfg.Audience, cfg.Leeway, cfg.Now),
	}, nil
}

// idpCheckSources checks where the tokens and keys come from and what the
// tokens must name: issuer, JWKS URL, audience and algorithms (RS256 if
// none).
func idpCheckSources(cfg *IdPConfig) []error {
	var errs []error
	if err := idpCheckURL(cfg.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	} else if u, _ := url.Parse(cfg.Issuer); u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, errors.New("issuer: must have no query or fragment (OIDC Discovery §2)"))
	}
	if cfg.JWKSURL != "" {
		if err := idpCheckURL(cfg.JWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("JWKS URL: %w", err))
		}
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("audience is required"))
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"RS256"}
	}
	for _, a := range cfg.Algorithms {
		switch {
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			errs = append(errs, fmt.Errorf("algorithm %q is symmetric: an IdP's tokens are verified with its public keys only (HMAC would allow key confusion)", a))
		case !slices.Contains(idpAlgorithms, a):
			errs = append(errs, fmt.Errorf("algorithm %q is not supported (want one of %s)", a, strings.Join(idpAlgorithms, ", ")))
		}
	}
	return errs
}

// idpCheckIntervals fills in the default leeway and refresh intervals and
// checks them.
func idpCheckIntervals(cfg *IdPConfig) []error {
	var errs []error
	if cfg.Leeway == 0 {
		cfg.Leeway = idpDefaultLeeway
	}
	if cfg.Leeway < 0 || cfg.Leeway > idpMaxLeeway {
		errs = append(errs, fmt.Errorf("leeway %s is outside [0, %s]", cfg.Leeway, idpMaxLeeway))
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = idpDefaultRefreshInterval
	}
	if cfg.RefreshInterval < 0 {
		errs = append(errs, fmt.Errorf("refresh interval %s must be positive", cfg.RefreshInterval))
	}
	if cfg.UnknownKIDInterval == 0 {
		cfg.UnknownKIDInterval = idpDefaultUnknownKIDInterval
	}
	if cfg.UnknownKIDInterval < 0 {
		errs = append(errs, fmt.Errorf("unknown-kid refetch interval %s must be positive", cfg.UnknownKIDInterval))
	}
	return errs
}

// Issuer implements Verifier.
func (p *IdP) Issuer() string { return p.issuer }

// Verify implements Verifier. Errors wrap ErrUnauthenticated, except a valid
// token without a usable group, which is ErrNoGroup. Messages never echo
// anything from the token.
//
// A token without a kid is refused, even when the IdP publishes a single
// key: each token then maps to at most one key, no token makes the verifier
// try every key, and OIDC providers set kid on the tokens they sign.
func (p *IdP) Verify(ctx context.Context, token string) (Principal, error) {
	if len(token) > maxTokenLen {
		return Principal{}, refusal.New(ErrUnauthenticated, "IdP token too long")
	}
	claims := jwt.MapClaims{}
	_, err := p.parser.ParseWithClaims(token, claims, p.keyfunc(ctx))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Principal{}, refusal.New(ErrUnauthenticated, "IdP token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return Principal{}, refusal.New(ErrUnauthenticated, "IdP token not valid yet")
	case err != nil:
		return Principal{}, refusal.New(ErrUnauthenticated, "invalid IdP token")
	}
	sub, _ := claims["sub"].(string)
	exp, err := claims.GetExpirationTime()
	if sub == "" || err != nil || exp == nil {
		return Principal{}, refusal.New(ErrUnauthenticated, "invalid IdP token")
	}
	group, ok := p.group(claims)
	if !ok {
		return Principal{}, fmt.Errorf("%w (claim %q)", ErrNoGroup, p.groupClaim)
	}
	// The session id lets RevokeToken cut an IdP token off until it is no
	// longer accepted (exp plus the leeway).
	jti, _ := claims["jti"].(string)
	return Principal{
		Kind:          KindIdP,
		Subject:       sub,
		Group:         group,
		Admin:         p.admin(claims),
		SessionID:     idpSessionID(p.issuer, jti, token),
		SessionExpiry: exp.Time.Add(p.leeway),
		Claims:        stringClaims(claims),
	}, nil
}

// stringClaims keeps the top-level string claims of a verified token, by
// name, within MaxClaims and MaxClaimLen: what a named query may bind.
func stringClaims(claims jwt.MapClaims) map[string]string {
	out := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(claims)) {
		if v, ok := claims[name].(string); ok && len(v) <= MaxClaimLen && len(name) <= MaxClaimLen {
			out[name] = v
			if len(out) == MaxClaims {
				break
			}
		}
	}
	return out
}

// errIdPKID is what the key lookup returns for a kid it will not look up; it
// never reaches the caller, whose message is "invalid IdP token".
var errIdPKID = errors.New("missing or unusable kid")

// keyfunc looks the token's key up by kid in the JWKS cache (refetching, rate
// limited, on an unknown kid). It is only reached once the algorithm has
// passed WithValidMethods; jku, x5u and any other header are ignored, so the
// keys only ever come from the configured IdP.
func (p *IdP) keyfunc(ctx context.Context) jwt.Keyfunc {
	lookup := p.keys.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		kid, ok := t.Header["kid"].(string)
		if !ok || kid == "" || len(kid) > idpMaxKIDLen {
			return nil, errIdPKID
		}
		return lookup(t)
	}
}

// idpSessionID identifies a verified IdP token for revocation: its jti,
// scoped to its issuer (two IdPs may reuse jtis), or without one a digest of
// the issuer and the token's signing input (header.payload).
//
// Never the signature: one signing input may carry several valid signatures
// (an ECDSA s and n−s both verify, and an IdP may sign the same claims
// twice), so an id that covered the signature would let a variant of a
// revoked token through. The signing input is what the signature proves.
func idpSessionID(issuer, jti, token string) string {
	if jti != "" {
		sum := sha256.Sum256([]byte(issuer + "\x00" + jti))
		return "idp:" + hex.EncodeToString(sum[:16])
	}
	signingInput := token[:strings.LastIndexByte(token, '.')] // Verify has parsed three segments
	sum := sha256.Sum256([]byte(issuer + "\x00" + signingInput))
	return "idp:" + hex.EncodeToString(sum[:])
}
