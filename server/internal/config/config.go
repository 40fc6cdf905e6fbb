// Package config reads the broker's configuration: environment variables with
// the reference backend's names (also read from a .env file), the YAML file
// named by TOKENBROKER_CONFIG (users and group policies), and flags, which
// override both. One table of settings (settings.go) says, for each, its
// variable, flag, default and meaning, and how it is read; Load reads them,
// runs every check of validate.go and reports every problem at once (a
// *ValidationError), each naming the setting to fix.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
)

//go:embed demo.yaml
var demoYAML []byte

// DemoYAML is the configuration file demo mode uses.
func DemoYAML() []byte { return bytes.Clone(demoYAML) }

// Fixed parts of the configuration, not settings: the claims of the
// broker's own sessions, and the grace a gRPC connection sent away gets.
const (
	DefaultIssuer                    = "tokenbroker"
	DefaultAudience                  = "tokenbroker"
	DefaultLeeway                    = 30 * time.Second
	DefaultGRPCMaxConnectionAgeGrace = time.Minute
)

// Store kinds.
const (
	StoreMemory = "memory"
	StoreBolt   = "bbolt"
	StoreRedis  = "redis"
)

// Config is the broker's configuration. Load returns it validated, with Built
// filled in; the defaults of its settings are in the table of settings.go.
type Config struct {
	Demo bool

	Host     string // listen host; all interfaces when empty (loopback in demo mode)
	HTTPPort int    // REST gateway; 0 picks a free port
	GRPCPort int    // gRPC; 0 picks a free port
	// EmulatorPort is where demo mode's CARTO emulator listens (loopback).
	EmulatorPort int
	// GRPC bounds what a client may hold open on the gRPC server.
	GRPC GRPCLimits

	JWTSecret       []byte
	SessionTTL      time.Duration
	SessionIssuer   string
	SessionAudience string
	SessionLeeway   time.Duration

	Carto CartoConfig

	ConfigFile    string // TOKENBROKER_CONFIG, or "(built-in demo configuration)"
	Users         []auth.User
	Groups        map[string]policy.Template // named groups
	DefaultPolicy *policy.Template           // for groups not named; nil if none

	CORSOrigins []string
	// TrustedProxies are the peers whose X-Forwarded-For names the client.
	TrustedProxies []netip.Prefix
	Gateway        GatewayConfig
	LogFormat      string // "text" or "json"
	LogLevel       slog.Level

	// IdentityProviders whose tokens are accepted, and internal Services
	// identified by client certificates (TOKENBROKER_CONFIG).
	IdentityProviders []auth.IdPConfig
	Services          []auth.Service
	// Queries are the named queries the broker runs itself (queries:).
	Queries []namedquery.Query
	// PublicQueriesPerMinute bounds the public queries one client address
	// runs without credentials (0: no bound).
	PublicQueriesPerMinute int
	// QueryCacheBytes bounds the named queries' result cache (0: none).
	QueryCacheBytes int

	// SessionAlg signs sessions: HS256 with JWT_SECRET, or EdDSA / ES256
	// with keys the broker rotates every SessionKeyRotation and publishes at
	// /.well-known/jwks.json.
	SessionAlg         string
	SessionKeyRotation time.Duration

	TLS TLSConfig

	// Login abuse limits: failures per username and per address in a window.
	LoginMaxUserFailures int
	LoginMaxAddrFailures int
	LoginWindow          time.Duration
	// Login admission: how many password checks may wait for a CPU (at
	// least 1) and for how long, and how many one address may have running
	// or waiting (0: no bound).
	LoginMaxQueue     int
	LoginQueueTimeout time.Duration
	LoginMaxPerAddr   int

	// AuditLog is where audit events go: "" (with the other logs), "stdout",
	// "off", or a file path.
	AuditLog string

	Store StoreConfig
	// Deployment names this broker's tokens at CARTO, so reconciliation
	// only ever deletes its own: deployments sharing a CARTO client need
	// different names.
	Deployment        string
	MaxLiveTokens     int // 0: no ceiling
	MaxMintsPerHour   int // 0: no ceiling
	ReconcileInterval time.Duration

	// MaxMintsPerGroupPerHour: a group's callers cannot spend more of
	// MaxMintsPerHour (0: no per-group ceiling).
	MaxMintsPerGroupPerHour int
	// MaxRevocationsPerGroupPerHour bounds members' revocations of their
	// group's CARTO token (0: none); admins' are not counted.
	MaxRevocationsPerGroupPerHour int
	// AdminsRevokeCartoTokens: CARTO_TOKEN_REVOKERS=admins.
	AdminsRevokeCartoTokens bool
	// RefreshReservePercent of the ceilings only background refreshes use.
	RefreshReservePercent int

	// Built is what validation built from Users, Groups and Services.
	Built Built
}

// GatewayConfig is the CARTO gateway's part of the configuration.
type GatewayConfig struct {
	// URL is where browsers reach the gateway; its path is where the broker
	// serves it. "" turns it off, but in demo mode, where the broker serves
	// it at /carto on its REST port (DemoGatewayPath).
	URL string
	// CacheTTL is how long a map instantiation answer is reused (0: not).
	CacheTTL time.Duration
}

// DemoGatewayPath is where demo mode serves the CARTO gateway.
const DemoGatewayPath = "/carto"

// Path is where the broker serves the gateway; "" when it is off.
func (g GatewayConfig) Path(demo bool) string {
	if g.URL == "" {
		if demo {
			return DemoGatewayPath
		}
		return ""
	}
	u, err := url.Parse(g.URL)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.Path, "/")
}

// Built holds what Load builds from the configuration while validating it,
// so that the app builds none of it again.
type Built struct {
	Users    *auth.Users
	Policies *policy.Set
	Services *auth.Services  // nil when no services: are configured
	Queries  *namedquery.Set // the named queries (empty when none)
}

// GRPCLimits bounds the gRPC server's connections and streams (see
// transport.Limits): health Watch and reflection streams need no
// credentials, so each is bounded.
type GRPCLimits struct {
	MaxConcurrentStreams  int // per connection
	MaxHealthWatches      int // open at once, whole server
	MaxReflectionStreams  int // open at once, whole server
	MaxConnectionIdle     time.Duration
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	KeepaliveMinTime      time.Duration
}

// TLSConfig serves gRPC and REST over TLS; with ClientCAFile, client
// certificates signed by that CA identify internal services.
type TLSConfig struct {
	CertFile, KeyFile, ClientCAFile string
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// StoreConfig selects where tokens and revocations are kept.
type StoreConfig struct {
	Kind     string // StoreMemory, StoreBolt or StoreRedis
	Path     string // bbolt file
	RedisURL string
	Key      []byte // seals tokens at rest (bbolt, Redis)
}

// CartoConfig holds the CARTO OAuth client and how it copes with CARTO's
// faults.
type CartoConfig struct {
	BaseURL      string
	AuthURL      string
	ClientID     string
	ClientSecret string
	// CallTimeout bounds each attempt of a call to CARTO.
	CallTimeout time.Duration
	// BreakerCooldown is how long calls fail at once after CARTO failed 5
	// times in a row.
	BreakerCooldown time.Duration
}

// HTTPAddr and GRPCAddr are the listen addresses.
func (c Config) HTTPAddr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.HTTPPort)) }
func (c Config) GRPCAddr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.GRPCPort)) }

// LogValue describes the configuration without its secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("demo", c.Demo),
		slog.String("http", c.HTTPAddr()),
		slog.String("grpc", c.GRPCAddr()),
		slog.String("carto_base_url", c.Carto.BaseURL),
		slog.String("carto_auth_url", c.Carto.AuthURL),
		slog.String("config_file", c.ConfigFile),
		slog.Int("users", len(c.Users)),
		slog.Int("groups", len(c.Groups)),
		slog.Bool("default_policy", c.DefaultPolicy != nil),
		slog.Duration("session_ttl", c.SessionTTL),
		slog.String("store", c.Store.Kind),
		slog.String("deployment", c.Deployment),
	)
}

// Env looks up an environment variable.
type Env func(key string) (string, bool)

// Load reads flags from args, then the environment (with .env file values
// under real ones), then the YAML file, and validates the result. A mistake
// in the flags is returned as is (flag.ErrHelp for -h, ErrVersion for
// --version); configuration problems as a *ValidationError listing all of
// them.
func Load(args []string, env Env) (Config, error) {
	given, explicit, err := parseFlags(args)
	if err != nil {
		return Config{}, err
	}
	envFile := given[envFileFlag]
	// The default .env is read if it is there; one named on the command
	// line must be; --env-file= reads none.
	dotenv, err := readDotenv(envFile, explicit[envFileFlag])
	if err != nil {
		return Config{}, &ValidationError{Errs: []error{fmt.Errorf("env file %s (--env-file): %w", envFile, err)}}
	}
	// A flag wins over the environment, which wins over the .env file.
	lookup := func(s setting) string {
		if v := given[s.flag]; s.flag != "" && v != "" {
			return v
		}
		if s.env == "" {
			return ""
		}
		if v, ok := env(s.env); ok {
			return v
		}
		return dotenv[s.env]
	}
	c := Config{
		SessionIssuer:   DefaultIssuer,
		SessionAudience: DefaultAudience,
		SessionLeeway:   DefaultLeeway,
		GRPC:            GRPCLimits{MaxConnectionAgeGrace: DefaultGRPCMaxConnectionAgeGrace},
	}
	var errs []error
	for _, s := range settings {
		if err := s.read(&c, lookup(s)); err != nil {
			errs = append(errs, err)
		}
	}
	c.applyDemo()
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return Config{}, &ValidationError{Errs: errs}
	}
	return c, nil
}

// readDotenv reads the .env file, if there is one.
func readDotenv(path string, required bool) (map[string]string, error) {
	if path == "" {
		return map[string]string{}, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseDotenv(bytes.NewReader(b))
}

// ValidationError lists every configuration problem.
type ValidationError struct{ Errs []error }

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, err := range e.Errs {
		b.WriteString("\n  - ")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *ValidationError) Unwrap() []error { return e.Errs }
