// Package config reads the broker's configuration: environment variables with
// the reference backend's names (also read from a .env file), the YAML file
// named by TOKENBROKER_CONFIG (users and group policies), and flags, which
// override both. Load reports every problem at once (a *ValidationError),
// each naming the setting to fix.
package config

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/seal"
)

//go:embed demo.yaml
var demoYAML []byte

// DemoYAML is the configuration file demo mode uses.
func DemoYAML() []byte { return bytes.Clone(demoYAML) }

// Defaults.
const (
	DefaultHTTPPort     = 8000
	DefaultGRPCPort     = 9090
	DefaultEmulatorPort = 8001
	DefaultSessionTTL   = time.Hour
	DefaultIssuer       = "tokenbroker"
	DefaultAudience     = "tokenbroker"
	DefaultLeeway       = 30 * time.Second

	DefaultDBPath            = "tokenbroker.db"
	DefaultDeployment        = "default"
	DefaultMaxLiveTokens     = 500
	DefaultMaxMintsPerHour   = 300
	DefaultReconcileInterval = 10 * time.Minute
)

// gRPC connection and stream limits (GRPCLimits).
const (
	DefaultGRPCMaxConcurrentStreams  = 100
	DefaultGRPCMaxHealthWatches      = 1000
	DefaultGRPCMaxReflectionStreams  = 100
	DefaultGRPCMaxConnectionIdle     = 15 * time.Minute
	DefaultGRPCMaxConnectionAge      = 30 * time.Minute
	DefaultGRPCMaxConnectionAgeGrace = time.Minute
	DefaultGRPCKeepaliveMinTime      = 10 * time.Second
)

// Fairness defaults (see DefaultMaxMintsPerGroup for a group's mints).
const (
	// DefaultMaxRevocationsPerGroup bounds members' revocations of their
	// group's CARTO token an hour: each one makes the group mint again.
	DefaultMaxRevocationsPerGroup = 10
	// DefaultRefreshReservePercent of the ceilings is kept for refreshes.
	DefaultRefreshReservePercent = 10
)

// Store kinds.
const (
	StoreMemory = "memory"
	StoreBolt   = "bbolt"
	StoreRedis  = "redis"
)

// Config is the broker's configuration.
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

	ConfigFile    string // TOKENBROKER_CONFIG, or "(demo)"
	Users         []auth.User
	Groups        map[string]policy.Template // named groups
	DefaultPolicy *policy.Template           // for groups not named; nil if none

	CORSOrigins []string
	LogFormat   string // "text" or "json"
	LogLevel    slog.Level

	// IdentityProviders whose tokens are accepted, and internal Services
	// identified by client certificates (TOKENBROKER_CONFIG).
	IdentityProviders []auth.IdPConfig
	Services          []auth.Service

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
	// Login admission: how many password checks may wait for a CPU (0: 4 ×
	// GOMAXPROCS) and for how long, and how many one address may have
	// running or waiting (0: no bound).
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

// flagValues are the command-line flags; empty means "not given".
type flagValues struct {
	demo                                                              bool
	file, envFile, host, port, grpcPort, emuPort, logFormat, logLevel string
	store, db                                                         string
}

func newFlagSet() (*flag.FlagSet, *flagValues) {
	flags := flag.NewFlagSet("tokenbroker", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	v := &flagValues{}
	flags.BoolVar(&v.demo, "demo", false, "run with the built-in CARTO emulator and demo users; no account needed")
	flags.StringVar(&v.file, "config", "", "YAML file with users: and groups: (overrides TOKENBROKER_CONFIG)")
	flags.StringVar(&v.envFile, "env-file", ".env", "file of KEY=VALUE lines read under the environment, if it exists")
	flags.StringVar(&v.host, "host", "", "listen host (overrides HOST)")
	flags.StringVar(&v.port, "port", "", "REST port (overrides PORT)")
	flags.StringVar(&v.grpcPort, "grpc-port", "", "gRPC port (overrides GRPC_PORT)")
	flags.StringVar(&v.emuPort, "emulator-port", "", "demo mode: CARTO emulator port (overrides DEMO_CARTO_PORT)")
	flags.StringVar(&v.logFormat, "log-format", "", "text or json (overrides LOG_FORMAT)")
	flags.StringVar(&v.logLevel, "log-level", "", "debug, info, warn or error (overrides LOG_LEVEL)")
	flags.StringVar(&v.store, "store", "", "memory, bbolt or redis (overrides TOKENBROKER_STORE)")
	flags.StringVar(&v.db, "db", "", "bbolt file (overrides TOKENBROKER_DB)")
	return flags, v
}

// FlagUsage describes the flags Load accepts.
func FlagUsage() string {
	flags, _ := newFlagSet()
	var b strings.Builder
	flags.SetOutput(&b)
	flags.PrintDefaults()
	return b.String()
}

// Load reads flags from args, then the environment (with .env file values
// under real ones), then the YAML file, and validates the result. A mistake
// in the flags is returned as is (flag.ErrHelp for -h); configuration
// problems as a *ValidationError listing all of them.
func Load(args []string, env Env) (Config, error) {
	flags, f := newFlagSet()
	if err := flags.Parse(args); err != nil {
		return Config{}, err
	}
	if flags.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", flags.Arg(0))
	}

	dotenv := map[string]string{}
	if b, err := os.ReadFile(f.envFile); err == nil {
		if dotenv, err = parseDotenv(bytes.NewReader(b)); err != nil {
			return Config{}, &ValidationError{Errs: []error{fmt.Errorf("env file %s (--env-file): %w", f.envFile, err)}}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Config{}, &ValidationError{Errs: []error{fmt.Errorf("env file %s (--env-file): %w", f.envFile, err)}}
	}
	get := func(key, flagVal string) string {
		if flagVal != "" {
			return flagVal
		}
		if v, ok := env(key); ok {
			return v
		}
		return dotenv[key]
	}

	var errs []error
	c := Config{
		Demo:            f.demo,
		Host:            get("HOST", f.host),
		SessionIssuer:   DefaultIssuer,
		SessionAudience: DefaultAudience,
		SessionLeeway:   DefaultLeeway,
		LogFormat:       strings.ToLower(orDefault(get("LOG_FORMAT", f.logFormat), "text")),
	}
	c.HTTPPort = parsePort(&errs, "PORT", get("PORT", f.port), DefaultHTTPPort)
	c.GRPCPort = parsePort(&errs, "GRPC_PORT", get("GRPC_PORT", f.grpcPort), DefaultGRPCPort)
	if c.HTTPPort != 0 && c.HTTPPort == c.GRPCPort {
		errs = append(errs, fmt.Errorf("PORT and GRPC_PORT are both %d: give each its own port", c.HTTPPort))
	}
	c.EmulatorPort = parsePort(&errs, "DEMO_CARTO_PORT", get("DEMO_CARTO_PORT", f.emuPort), DefaultEmulatorPort)
	c.GRPC = GRPCLimits{
		MaxConcurrentStreams:  parseBounded(&errs, "GRPC_MAX_CONCURRENT_STREAMS", get("GRPC_MAX_CONCURRENT_STREAMS", ""), DefaultGRPCMaxConcurrentStreams, 1, 10_000),
		MaxHealthWatches:      parseBounded(&errs, "GRPC_MAX_HEALTH_WATCHES", get("GRPC_MAX_HEALTH_WATCHES", ""), DefaultGRPCMaxHealthWatches, 1, 100_000),
		MaxReflectionStreams:  parseBounded(&errs, "GRPC_MAX_REFLECTION_STREAMS", get("GRPC_MAX_REFLECTION_STREAMS", ""), DefaultGRPCMaxReflectionStreams, 1, 10_000),
		MaxConnectionIdle:     parseDuration(&errs, "GRPC_MAX_CONNECTION_IDLE", get("GRPC_MAX_CONNECTION_IDLE", ""), DefaultGRPCMaxConnectionIdle),
		MaxConnectionAge:      parseDuration(&errs, "GRPC_MAX_CONNECTION_AGE", get("GRPC_MAX_CONNECTION_AGE", ""), DefaultGRPCMaxConnectionAge),
		MaxConnectionAgeGrace: DefaultGRPCMaxConnectionAgeGrace,
		KeepaliveMinTime:      parseDuration(&errs, "GRPC_KEEPALIVE_MIN_TIME", get("GRPC_KEEPALIVE_MIN_TIME", ""), DefaultGRPCKeepaliveMinTime),
	}
	c.SessionTTL = parseDuration(&errs, "SESSION_TTL", get("SESSION_TTL", ""), DefaultSessionTTL)
	if err := c.LogLevel.UnmarshalText([]byte(orDefault(get("LOG_LEVEL", f.logLevel), "info"))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %q is not one of debug, info, warn, error", get("LOG_LEVEL", f.logLevel)))
	}
	for _, o := range strings.Split(orDefault(get("CORS_ALLOWED_ORIGINS", ""), "*"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}

	c.JWTSecret = []byte(get("JWT_SECRET", ""))
	c.Carto = CartoConfig{
		BaseURL:      get("CARTO_BASE_URL", ""),
		AuthURL:      orDefault(get("CARTO_AUTH_URL", ""), carto.DefaultAuthURL),
		ClientID:     get("CARTO_CLIENT_ID", ""),
		ClientSecret: get("CARTO_CLIENT_SECRET", ""),
	}
	c.Carto.CallTimeout = parseDuration(&errs, "CARTO_CALL_TIMEOUT", get("CARTO_CALL_TIMEOUT", ""), 10*time.Second)
	c.Carto.BreakerCooldown = parseDuration(&errs, "CARTO_BREAKER_COOLDOWN", get("CARTO_BREAKER_COOLDOWN", ""), 10*time.Second)
	// The CARTO guides call the base URL CARTO_API_BASE_URL: accept it too.
	if alias := get("CARTO_API_BASE_URL", ""); alias != "" {
		if c.Carto.BaseURL != "" && c.Carto.BaseURL != alias {
			errs = append(errs, errors.New("CARTO_BASE_URL and CARTO_API_BASE_URL are both set, to different URLs: set one"))
		}
		c.Carto.BaseURL = alias
	}

	c.Store = StoreConfig{
		Kind:     strings.ToLower(get("TOKENBROKER_STORE", f.store)),
		Path:     orDefault(get("TOKENBROKER_DB", f.db), DefaultDBPath),
		RedisURL: get("REDIS_URL", ""),
	}
	if c.Store.Kind == "" {
		switch {
		case f.demo:
			c.Store.Kind = StoreMemory
		case c.Store.RedisURL != "":
			c.Store.Kind = StoreRedis
		default:
			c.Store.Kind = StoreBolt
		}
	}
	if k := get("TOKENBROKER_STORE_KEY", ""); k != "" {
		key, err := seal.ParseKey(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("TOKENBROKER_STORE_KEY: %w", err))
			key = []byte{} // set, if wrong: not reported as missing as well
		}
		c.Store.Key = key
	}
	c.Deployment = orDefault(get("TOKENBROKER_DEPLOYMENT", ""), DefaultDeployment)
	c.MaxLiveTokens = parseCount(&errs, "MAX_LIVE_TOKENS", get("MAX_LIVE_TOKENS", ""), DefaultMaxLiveTokens)
	c.MaxMintsPerHour = parseCount(&errs, "MAX_MINTS_PER_HOUR", get("MAX_MINTS_PER_HOUR", ""), DefaultMaxMintsPerHour)
	c.MaxMintsPerGroupPerHour = parseCount(&errs, "MAX_MINTS_PER_GROUP_PER_HOUR", get("MAX_MINTS_PER_GROUP_PER_HOUR", ""), DefaultMaxMintsPerGroup(c.MaxMintsPerHour))
	c.MaxRevocationsPerGroupPerHour = parseCount(&errs, "MAX_TOKEN_REVOCATIONS_PER_GROUP_PER_HOUR", get("MAX_TOKEN_REVOCATIONS_PER_GROUP_PER_HOUR", ""), DefaultMaxRevocationsPerGroup)
	c.RefreshReservePercent = parseCount(&errs, "REFRESH_RESERVE_PERCENT", get("REFRESH_RESERVE_PERCENT", ""), DefaultRefreshReservePercent)
	switch v := orDefault(get("CARTO_TOKEN_REVOKERS", ""), "members"); v {
	case "members", "admins":
		c.AdminsRevokeCartoTokens = v == "admins"
	default:
		errs = append(errs, fmt.Errorf("CARTO_TOKEN_REVOKERS: %q is not members (a group's members may revoke its CARTO token) or admins", v))
	}
	c.ReconcileInterval = parseDuration(&errs, "RECONCILE_INTERVAL", get("RECONCILE_INTERVAL", ""), DefaultReconcileInterval)

	c.SessionAlg = orDefault(get("SESSION_SIGNING_ALG", ""), "HS256")
	c.SessionKeyRotation = parseDuration(&errs, "SESSION_KEY_ROTATION", get("SESSION_KEY_ROTATION", ""), 24*time.Hour)
	c.TLS = TLSConfig{CertFile: get("TLS_CERT_FILE", ""), KeyFile: get("TLS_KEY_FILE", ""), ClientCAFile: get("TLS_CLIENT_CA_FILE", "")}
	c.LoginMaxUserFailures = parseCount(&errs, "LOGIN_MAX_USER_FAILURES", get("LOGIN_MAX_USER_FAILURES", ""), 20)
	c.LoginMaxAddrFailures = parseCount(&errs, "LOGIN_MAX_ADDR_FAILURES", get("LOGIN_MAX_ADDR_FAILURES", ""), 100)
	c.LoginWindow = parseDuration(&errs, "LOGIN_LOCKOUT_WINDOW", get("LOGIN_LOCKOUT_WINDOW", ""), 15*time.Minute)
	c.LoginMaxQueue = parseCount(&errs, "LOGIN_MAX_QUEUE", get("LOGIN_MAX_QUEUE", ""), 4*runtime.GOMAXPROCS(0))
	c.LoginQueueTimeout = parseDuration(&errs, "LOGIN_QUEUE_TIMEOUT", get("LOGIN_QUEUE_TIMEOUT", ""), 2*time.Second)
	c.LoginMaxPerAddr = parseCount(&errs, "LOGIN_MAX_INFLIGHT_PER_ADDR", get("LOGIN_MAX_INFLIGHT_PER_ADDR", ""), 2)
	c.AuditLog = get("AUDIT_LOG", "")

	c.ConfigFile = get("TOKENBROKER_CONFIG", f.file)
	var fc fileConfig
	switch {
	case c.ConfigFile != "":
		b, err := os.ReadFile(c.ConfigFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("TOKENBROKER_CONFIG: %w", err))
			break
		}
		if fc, err = parseFile(bytes.NewReader(b)); err != nil {
			errs = append(errs, fmt.Errorf("TOKENBROKER_CONFIG %s: %w", c.ConfigFile, err))
			break
		}
		if len(fc.Users) == 0 && len(fc.IdentityProviders) == 0 && len(fc.Services) == 0 {
			errs = append(errs, fmt.Errorf("TOKENBROKER_CONFIG %s has no users:, identity_providers: or services:", c.ConfigFile))
		}
	case c.Demo:
		c.ConfigFile = "(built-in demo configuration)"
		var err error
		if fc, err = parseFile(bytes.NewReader(demoYAML)); err != nil {
			return Config{}, fmt.Errorf("built-in demo configuration: %w", err)
		}
	}
	c.Users = fc.users()
	c.Groups, c.DefaultPolicy = fc.policies()
	c.IdentityProviders = fc.identityProviders()
	c.Services = fc.services()

	if c.Demo {
		// Demo users have published passwords: listen on loopback only,
		// unless HOST (or --host) says otherwise.
		if c.Host == "" {
			c.Host = "127.0.0.1"
		}
		// Demo mode signs sessions with a fresh random secret (sessions end
		// with the process) and talks to the in-process emulator, whose
		// address and client the caller fills in.
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		c.JWTSecret = secret
		c.Carto = CartoConfig{CallTimeout: c.Carto.CallTimeout, BreakerCooldown: c.Carto.BreakerCooldown}
	}
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return Config{}, &ValidationError{Errs: errs}
	}
	return c, nil
}

// validate checks what Load could not check field by field.
func (c Config) validate() []error {
	var errs []error
	if !c.Demo && c.SessionAlg == "HS256" {
		switch {
		case len(c.JWTSecret) == 0:
			errs = append(errs, fmt.Errorf("JWT_SECRET is not set: it signs session tokens and must be at least %d bytes (e.g. `openssl rand -base64 48`)", auth.MinSecretLen))
		case len(c.JWTSecret) < auth.MinSecretLen:
			errs = append(errs, fmt.Errorf("JWT_SECRET is %d bytes: at least %d are required", len(c.JWTSecret), auth.MinSecretLen))
		}
	}
	if !c.Demo {
		if c.Carto.BaseURL == "" {
			errs = append(errs, errors.New("CARTO_BASE_URL is not set: the CARTO API base URL of your region, e.g. https://gcp-us-east1.api.carto.com"))
		} else if err := checkURL(c.Carto.BaseURL); err != nil {
			errs = append(errs, fmt.Errorf("CARTO_BASE_URL: %w", err))
		}
		if err := checkURL(c.Carto.AuthURL); err != nil {
			errs = append(errs, fmt.Errorf("CARTO_AUTH_URL: %w", err))
		}
		if c.Carto.ClientID == "" {
			errs = append(errs, errors.New("CARTO_CLIENT_ID is not set: the id of your CARTO machine-to-machine OAuth client"))
		}
		if c.Carto.ClientSecret == "" {
			errs = append(errs, errors.New("CARTO_CLIENT_SECRET is not set: the secret of your CARTO machine-to-machine OAuth client"))
		}
		if c.ConfigFile == "" {
			errs = append(errs, errors.New("no user store or identity provider: set TOKENBROKER_CONFIG to a YAML file with users: or identity_providers: (see the README), or run with --demo"))
		}
	}
	switch c.SessionAlg {
	case "HS256", "EdDSA", "ES256":
	default:
		errs = append(errs, fmt.Errorf("SESSION_SIGNING_ALG %q is not HS256, EdDSA or ES256", c.SessionAlg))
	}
	if c.SessionKeyRotation < time.Minute {
		errs = append(errs, fmt.Errorf("SESSION_KEY_ROTATION %s is below 1m", c.SessionKeyRotation))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither"))
	}
	if c.TLS.ClientCAFile != "" && !c.TLS.Enabled() {
		errs = append(errs, errors.New("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE"))
	}
	for _, f := range []struct{ name, path string }{{"TLS_CERT_FILE", c.TLS.CertFile}, {"TLS_KEY_FILE", c.TLS.KeyFile}, {"TLS_CLIENT_CA_FILE", c.TLS.ClientCAFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			}
		}
	}
	if len(c.Services) > 0 && c.TLS.ClientCAFile == "" {
		errs = append(errs, errors.New("services: are identified by client certificates: set TLS_CLIENT_CA_FILE (and TLS_CERT_FILE, TLS_KEY_FILE)"))
	}
	if err := validServices(c.Services); err != nil {
		errs = append(errs, prefixed("services", err)...)
	}
	errs = append(errs, invalidIdentityProviders(c.IdentityProviders)...)
	for _, s := range c.Services {
		for _, g := range s.Groups {
			if _, named := c.Groups[g]; !named && c.DefaultPolicy == nil {
				errs = append(errs, fmt.Errorf("services: service %q may ask for group %q, which has no policy", s.Name, g))
			}
		}
	}
	if c.Carto.CallTimeout < 100*time.Millisecond || c.Carto.CallTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("CARTO_CALL_TIMEOUT %s is outside [100ms, 1m]", c.Carto.CallTimeout))
	}
	if c.Carto.BreakerCooldown < 100*time.Millisecond || c.Carto.BreakerCooldown > 10*time.Minute {
		errs = append(errs, fmt.Errorf("CARTO_BREAKER_COOLDOWN %s is outside [100ms, 10m]", c.Carto.BreakerCooldown))
	}
	for _, d := range []struct {
		name   string
		v      time.Duration
		lo, hi time.Duration
	}{
		{"GRPC_MAX_CONNECTION_IDLE", c.GRPC.MaxConnectionIdle, 10 * time.Second, 24 * time.Hour},
		{"GRPC_MAX_CONNECTION_AGE", c.GRPC.MaxConnectionAge, 10 * time.Second, 24 * time.Hour},
		{"GRPC_KEEPALIVE_MIN_TIME", c.GRPC.KeepaliveMinTime, time.Second, time.Hour},
	} {
		if d.v < d.lo || d.v > d.hi {
			errs = append(errs, fmt.Errorf("%s %s is outside [%s, %s]", d.name, d.v, d.lo, d.hi))
		}
	}
	if c.LoginWindow < time.Minute {
		errs = append(errs, fmt.Errorf("LOGIN_LOCKOUT_WINDOW %s is below 1m", c.LoginWindow))
	}
	if c.LoginMaxQueue < 1 {
		errs = append(errs, errors.New("LOGIN_MAX_QUEUE is 0: at least 1 (logins wait there for a CPU; the queue is never unbounded)"))
	}
	if c.LoginQueueTimeout < 10*time.Millisecond || c.LoginQueueTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("LOGIN_QUEUE_TIMEOUT %s is outside [10ms, 1m]", c.LoginQueueTimeout))
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("SESSION_TTL %s is outside [1m, 168h]", c.SessionTTL))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("LOG_FORMAT %q is not text or json", c.LogFormat))
	}
	switch c.Store.Kind {
	case StoreMemory:
	case StoreBolt, StoreRedis:
		if c.Store.Key == nil && !c.Demo {
			errs = append(errs, fmt.Errorf("TOKENBROKER_STORE_KEY is not set: tokens kept in the %s store are encrypted with it (make one with `openssl rand -base64 32`)", c.Store.Kind))
		}
		if c.Store.Kind == StoreRedis && c.Store.RedisURL == "" {
			errs = append(errs, errors.New("TOKENBROKER_STORE is redis but REDIS_URL is not set"))
		}
	default:
		errs = append(errs, fmt.Errorf("TOKENBROKER_STORE %q is not memory, bbolt or redis", c.Store.Kind))
	}
	if c.Demo && c.Store.Kind != StoreMemory && c.Store.Key == nil {
		errs = append(errs, fmt.Errorf("TOKENBROKER_STORE_KEY is not set: demo mode with the %s store needs it", c.Store.Kind))
	}
	if !validDeployment(c.Deployment) {
		errs = append(errs, fmt.Errorf("TOKENBROKER_DEPLOYMENT %q: use 1 to 40 letters, digits, '.', '_' or '-'", c.Deployment))
	}
	if c.RefreshReservePercent > 50 {
		errs = append(errs, fmt.Errorf("REFRESH_RESERVE_PERCENT %d is above 50: keep most of MAX_LIVE_TOKENS and MAX_MINTS_PER_HOUR for users", c.RefreshReservePercent))
	}
	if c.MaxMintsPerHour > 0 && c.MaxMintsPerGroupPerHour > c.MaxMintsPerHour {
		errs = append(errs, fmt.Errorf("MAX_MINTS_PER_GROUP_PER_HOUR %d is above MAX_MINTS_PER_HOUR %d: one group could spend every group's budget", c.MaxMintsPerGroupPerHour, c.MaxMintsPerHour))
	}
	if c.ReconcileInterval != 0 && c.ReconcileInterval < time.Minute {
		errs = append(errs, fmt.Errorf("RECONCILE_INTERVAL %s is below 1m (0 turns periodic reconciliation off)", c.ReconcileInterval))
	}
	if err := auth.ValidateUsers(c.Users); err != nil {
		errs = append(errs, prefixed("users", err)...)
	}
	if _, err := policy.NewSet(policy.SetConfig{Groups: c.Groups, Default: c.DefaultPolicy}); err != nil {
		errs = append(errs, prefixed("groups", err)...)
	}
	// Coverage is checked even when some policy is invalid, so every problem
	// is reported in one go.
	for _, u := range c.Users {
		if _, named := c.Groups[u.Group]; u.Group != "" && !named && c.DefaultPolicy == nil {
			errs = append(errs, fmt.Errorf("groups: user %q is in group %q, which has no policy and there is no %q default", u.Username, u.Group, DefaultGroup))
		}
	}
	return errs
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
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

func parsePort(errs *[]error, name, v string, def int) int {
	if v == "" {
		return def
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 || p > 65535 {
		*errs = append(*errs, fmt.Errorf("%s: %q is not a port number", name, v))
		return def
	}
	return p
}

func parseCount(errs *[]error, name, v string, def int) int {
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		*errs = append(*errs, fmt.Errorf("%s: %q is not a count (0 means no limit)", name, v))
		return def
	}
	return n
}

// parseBounded reads a count that must lie in [lo, hi].
func parseBounded(errs *[]error, name, v string, def, lo, hi int) int {
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		*errs = append(*errs, fmt.Errorf("%s: %q is not a whole number from %d to %d", name, v, lo, hi))
		return def
	}
	return n
}

// DefaultMaxMintsPerGroup is a group's share of maxMints when
// MAX_MINTS_PER_GROUP_PER_HOUR is not set: a tenth, at least 10, at most
// all of it; no ceiling when maxMints has none.
func DefaultMaxMintsPerGroup(maxMints int) int {
	if maxMints == 0 {
		return 0
	}
	return min(maxMints, max(10, maxMints/10))
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

func parseDuration(errs *[]error, name, v string, def time.Duration) time.Duration {
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %q is not a duration such as 1h or 30m", name, v))
		return def
	}
	return d
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
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

func validServices(list []auth.Service) error {
	_, err := auth.NewServices(list)
	return err
}

// invalidIdentityProviders checks every identity provider without contacting
// it (plain http to a non-loopback host, HMAC algorithms, bad claims...), so
// such a file is refused at load with every problem named.
func invalidIdentityProviders(list []auth.IdPConfig) []error {
	var errs []error
	for i, p := range list {
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
