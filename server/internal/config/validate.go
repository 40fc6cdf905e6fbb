package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
)

// checks are what validation checks, one idea each. Every check runs, so
// that every problem is reported at once; those that build what they check
// (users, policies, services) leave it in Config.Built.
var checks = []func(c *Config) []error{
	checkServers,
	checkSessions,
	checkCarto,
	checkGateway,
	checkTLS,
	checkUsers,
	checkPolicies,
	checkServices,
	checkQueries,
	checkIdentityProviders,
	checkLogin,
	checkStore,
	checkQuota,
}

// validate runs every check on c and returns every problem found.
func (c *Config) validate() []error {
	var errs []error
	for _, check := range checks {
		errs = append(errs, check(c)...)
	}
	return errs
}

// A rule is one problem a check looks for: err, when bad.
type rule struct {
	bad bool
	err error
}

// broken returns the errors of the rules that are bad.
func broken(rules ...rule) []error {
	var errs []error
	for _, r := range rules {
		if r.bad {
			errs = append(errs, r.err)
		}
	}
	return errs
}

// outside is the rule that the duration v of the setting name lies in
// [lo, hi]; shown writes the bounds in the error ("" for Go's own way).
func outside(name string, v, lo, hi time.Duration, shown string) rule {
	if shown == "" {
		shown = fmt.Sprintf("[%s, %s]", lo, hi)
	}
	return rule{v < lo || v > hi, fmt.Errorf("%s %s is outside %s", name, v, shown)}
}

// checkServers: the listeners, the gRPC server's limits and the logs.
func checkServers(c *Config) []error {
	g := c.GRPC
	return broken(
		rule{c.HTTPPort != 0 && c.HTTPPort == c.GRPCPort, fmt.Errorf("PORT and GRPC_PORT are both %d: give each its own port", c.HTTPPort)},
		outside("GRPC_MAX_CONNECTION_IDLE", g.MaxConnectionIdle, 10*time.Second, 24*time.Hour, ""),
		outside("GRPC_MAX_CONNECTION_AGE", g.MaxConnectionAge, 10*time.Second, 24*time.Hour, ""),
		outside("GRPC_KEEPALIVE_MIN_TIME", g.KeepaliveMinTime, time.Second, time.Hour, ""),
		rule{c.LogFormat != "text" && c.LogFormat != "json", fmt.Errorf("LOG_FORMAT %q is not text or json", c.LogFormat)},
	)
}

// checkSessions: how the broker's sessions are signed, and how long they
// last.
func checkSessions(c *Config) []error {
	hmac := !c.Demo && c.SessionAlg == "HS256"
	n := len(c.JWTSecret)
	return broken(
		rule{hmac && n == 0, fmt.Errorf("JWT_SECRET is not set: it signs session tokens and must be at least %d bytes (e.g. `openssl rand -base64 48`)", auth.MinSecretLen)},
		rule{hmac && n > 0 && n < auth.MinSecretLen, fmt.Errorf("JWT_SECRET is %d bytes: at least %d are required", n, auth.MinSecretLen)},
		rule{!slices.Contains([]string{"HS256", "EdDSA", "ES256"}, c.SessionAlg), fmt.Errorf("SESSION_SIGNING_ALG %q is not HS256, EdDSA or ES256", c.SessionAlg)},
		rule{c.SessionKeyRotation < time.Minute, fmt.Errorf("SESSION_KEY_ROTATION %s is below 1m", c.SessionKeyRotation)},
		outside("SESSION_TTL", c.SessionTTL, time.Minute, 7*24*time.Hour, "[1m, 168h]"),
	)
}

// checkCarto: the CARTO client (the emulator's in demo mode), and how it
// copes with CARTO's faults.
func checkCarto(c *Config) []error {
	k, real := c.Carto, !c.Demo
	baseErr, authErr := checkURL(k.BaseURL), checkURL(k.AuthURL)
	return broken(
		rule{real && k.BaseURL == "", errors.New("CARTO_BASE_URL is not set: the CARTO API base URL of your region, e.g. https://gcp-us-east1.api.carto.com")},
		rule{real && k.BaseURL != "" && baseErr != nil, fmt.Errorf("CARTO_BASE_URL: %w", baseErr)},
		rule{real && authErr != nil, fmt.Errorf("CARTO_AUTH_URL: %w", authErr)},
		rule{real && k.ClientID == "", errors.New("CARTO_CLIENT_ID is not set: the id of your CARTO machine-to-machine OAuth client")},
		rule{real && k.ClientSecret == "", errors.New("CARTO_CLIENT_SECRET is not set: the secret of your CARTO machine-to-machine OAuth client")},
		outside("CARTO_CALL_TIMEOUT", k.CallTimeout, 100*time.Millisecond, time.Minute, "[100ms, 1m]"),
		outside("CARTO_BREAKER_COOLDOWN", k.BreakerCooldown, 100*time.Millisecond, 10*time.Minute, "[100ms, 10m]"),
	)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// checkTLS: the certificate, its key and the client CA go together, and
// their files exist.
func checkTLS(c *Config) []error {
	t := c.TLS
	errs := broken(
		rule{(t.CertFile == "") != (t.KeyFile == ""), errors.New("TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither")},
		rule{t.ClientCAFile != "" && !t.Enabled(), errors.New("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE")},
	)
	for _, f := range []struct{ name, path string }{{"TLS_CERT_FILE", t.CertFile}, {"TLS_KEY_FILE", t.KeyFile}, {"TLS_CLIENT_CA_FILE", t.ClientCAFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			}
		}
	}
	return errs
}

// checkUsers: some caller is configured, and the users: of the file are
// sound (Built.Users).
func checkUsers(c *Config) []error {
	errs := broken(rule{!c.Demo && c.ConfigFile == "", errors.New("no user store or identity provider: set TOKENBROKER_CONFIG to a YAML file with users: or identity_providers: (see the README), or run with --demo")})
	if users, err := auth.NewUsers(c.Users); err != nil {
		errs = append(errs, prefixed("users", err)...)
	} else {
		c.Built.Users = users
	}
	return errs
}

// checkPolicies: the group policies are sound (Built.Policies), and every
// group a user is in or a service may ask for has one. Coverage is checked
// even when some policy is invalid, so every problem is reported in one go.
func checkPolicies(c *Config) []error {
	var errs []error
	if set, err := policy.NewSet(policy.SetConfig{Groups: c.Groups, Default: c.DefaultPolicy}); err != nil {
		errs = prefixed("groups", err)
	} else {
		c.Built.Policies = set
	}
	covered := func(group string) bool {
		_, named := c.Groups[group]
		return named || c.DefaultPolicy != nil
	}
	for _, s := range c.Services {
		for _, g := range s.Groups {
			if !covered(g) {
				errs = append(errs, fmt.Errorf("services: service %q may ask for group %q, which has no policy", s.Name, g))
			}
		}
	}
	for _, u := range c.Users {
		if u.Group != "" && !covered(u.Group) {
			errs = append(errs, fmt.Errorf("groups: user %q is in group %q, which has no policy and there is no %q default", u.Username, u.Group, DefaultGroup))
		}
	}
	return errs
}

// checkQueries: the named queries are sound (Built.Queries).
func checkQueries(c *Config) []error {
	set, err := namedquery.NewSet(c.Queries)
	if err != nil {
		return prefixed("queries", err)
	}
	c.Built.Queries = set
	return nil
}

// checkServices: services are identified by client certificates, and the
// services: of the file are sound (Built.Services, nil when none).
func checkServices(c *Config) []error {
	errs := broken(rule{len(c.Services) > 0 && c.TLS.ClientCAFile == "", errors.New("services: are identified by client certificates: set TLS_CLIENT_CA_FILE (and TLS_CERT_FILE, TLS_KEY_FILE)")})
	services, err := auth.NewServices(c.Services)
	if err != nil {
		return append(errs, prefixed("services", err)...)
	}
	if len(c.Services) > 0 {
		c.Built.Services = services
	}
	return errs
}

// checkIdentityProviders checks every identity provider without contacting
// it (plain http to a non-loopback host, HMAC algorithms, bad claims...), so
// such a file is refused at load with every problem named.
func checkIdentityProviders(c *Config) []error {
	var errs []error
	for i, p := range c.IdentityProviders {
		name := p.Name
		if name == "" {
			name = p.Issuer
		}
		if err := p.Validate(); err != nil {
			errs = append(errs, prefixed(fmt.Sprintf("identity_providers in TOKENBROKER_CONFIG: provider %d (%q)", i+1, name), err)...)
		}
	}
	return errs
}

// checkLogin: the lockout window and the admission of password checks.
func checkLogin(c *Config) []error {
	return broken(
		rule{c.LoginWindow < time.Minute, fmt.Errorf("LOGIN_LOCKOUT_WINDOW %s is below 1m", c.LoginWindow)},
		rule{c.LoginMaxQueue < 1, errors.New("LOGIN_MAX_QUEUE is 0: at least 1 (logins wait there for a CPU; the queue is never unbounded)")},
		outside("LOGIN_QUEUE_TIMEOUT", c.LoginQueueTimeout, 10*time.Millisecond, time.Minute, "[10ms, 1m]"),
	)
}

// checkStore: a known store, with what it needs, and a deployment name.
func checkStore(c *Config) []error {
	s := c.Store
	sealed := s.Kind == StoreBolt || s.Kind == StoreRedis
	return broken(
		rule{!sealed && s.Kind != StoreMemory, fmt.Errorf("TOKENBROKER_STORE %q is not memory, bbolt or redis", s.Kind)},
		rule{sealed && s.Key == nil && !c.Demo, fmt.Errorf("TOKENBROKER_STORE_KEY is not set: tokens kept in the %s store are encrypted with it (make one with `openssl rand -base64 32`)", s.Kind)},
		rule{s.Kind == StoreRedis && s.RedisURL == "", errors.New("TOKENBROKER_STORE is redis but REDIS_URL is not set")},
		rule{c.Demo && s.Kind != StoreMemory && s.Key == nil, fmt.Errorf("TOKENBROKER_STORE_KEY is not set: demo mode with the %s store needs it", s.Kind)},
		rule{!validDeployment(c.Deployment), fmt.Errorf("TOKENBROKER_DEPLOYMENT %q: use 1 to 40 letters, digits, '.', '_' or '-'", c.Deployment)},
	)
}

func validDeployment(s string) bool {
	if len(s) == 0 || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// checkQuota: the ceilings on CARTO tokens, and reconciliation.
func checkQuota(c *Config) []error {
	return broken(
		rule{c.RefreshReservePercent > 50, fmt.Errorf("REFRESH_RESERVE_PERCENT %d is above 50: keep most of MAX_LIVE_TOKENS and MAX_MINTS_PER_HOUR for users", c.RefreshReservePercent)},
		rule{c.MaxMintsPerHour > 0 && c.MaxMintsPerGroupPerHour > c.MaxMintsPerHour, fmt.Errorf("MAX_MINTS_PER_GROUP_PER_HOUR %d is above MAX_MINTS_PER_HOUR %d: one group could spend every group's budget", c.MaxMintsPerGroupPerHour, c.MaxMintsPerHour)},
		rule{c.ReconcileInterval != 0 && c.ReconcileInterval < time.Minute, fmt.Errorf("RECONCILE_INTERVAL %s is below 1m (0 turns periodic reconciliation off)", c.ReconcileInterval)},
	)
}

// prefixed splits a joined error into its parts, each prefixed.
func prefixed(prefix string, err error) []error {
	var parts []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	} else {
		parts = []error{err}
	}
	out := make([]error, len(parts))
	for i, p := range parts {
		out[i] = fmt.Errorf("%s: %w", prefix, p)
	}
	return out
}

var gatewayPath = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)

// gatewayReserved are the paths the gateway's may not take: the API's.
var gatewayReserved = []string{"/v1", "/login", "/carto-token", "/metrics", "/healthz", "/readyz", "/.well-known", "/openapi.json", "/demo"}

// checkGateway: the CARTO gateway's URL is one browsers can use, and its
// path takes none of the API's.
func checkGateway(c *Config) []error {
	g := c.Gateway
	errs := broken(outside("CARTO_GATEWAY_CACHE_TTL", g.CacheTTL, 0, 10*time.Minute, ""))
	if g.URL == "" {
		return errs
	}
	u, err := url.Parse(g.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return append(errs, fmt.Errorf("CARTO_GATEWAY_URL %q must be an http(s) URL without query, e.g. https://maps.example.com/carto", g.URL))
	}
	p := strings.TrimSuffix(u.Path, "/")
	switch {
	case !gatewayPath.MatchString(p) && p != "":
		errs = append(errs, fmt.Errorf("CARTO_GATEWAY_URL path %q may hold only letters, digits and . _ ~ - between slashes", p))
	case p == "":
		errs = append(errs, fmt.Errorf("CARTO_GATEWAY_URL %q needs a path of its own, e.g. %s/carto: the API has the root", g.URL, strings.TrimSuffix(g.URL, "/")))
	case slices.ContainsFunc(gatewayReserved, func(r string) bool { return p == r || strings.HasPrefix(p, r+"/") }):
		errs = append(errs, fmt.Errorf("CARTO_GATEWAY_URL path %s is the API's: choose another, e.g. /carto", p))
	}
	return errs
}
