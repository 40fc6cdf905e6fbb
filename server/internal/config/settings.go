package config

import (
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// A setting is one row of the configuration: the environment variable (or
// a flag alone), the flag that overrides it, its default, what it means,
// and how its value is read into a Config. The table drives Load, the
// flags, the usage text and the README's check (readme_test.go).
type setting struct {
	env  string // environment variable; "" for a flag alone
	flag string // the flag that overrides env; "" for none
	// def is the value when none is given, read as a given one is; defFor
	// computes it instead from the settings above. Unset with neither, a
	// setting is read as "".
	def    string
	defFor func(c *Config) string
	// defDoc is the default in words (Markdown, as the README shows it),
	// where def does not say it all.
	defDoc string
	doc    string // one line
	isBool bool   // a flag without a value (--demo)
	// parse reads v into c; name is the setting's name, for errors. A
	// setting read by Load itself (--env-file) has none.
	parse func(c *Config, name, v string) error
}

// envFileFlag names the dotenv file, read before any setting.
const envFileFlag = "env-file"

// settings is the configuration, in the order Load reads it: a setting's
// parse or defFor may use the fields of the settings above it.
var settings = []setting{
	{flag: "demo", def: "false", defDoc: "off", isBool: true,
		doc:   "demo mode: the CARTO emulator, demo users, a random secret; CARTO_BASE_URL, CARTO_AUTH_URL and the CARTO client are ignored",
		parse: into(func(c *Config) *bool { return &c.Demo }, boolean)},
	{flag: envFileFlag, def: ".env", doc: "the dotenv file of KEY=VALUE lines read under the environment: .env if it exists; a file named here must exist (--env-file= reads none)"},

	{env: "HOST", flag: "host", defDoc: "all interfaces (`127.0.0.1` in demo mode)", doc: "listen host",
		defFor: func(c *Config) string { return demoOr(c, "127.0.0.1", "") },
		parse:  into(func(c *Config) *string { return &c.Host }, text)},
	{env: "PORT", flag: "port", def: "8000", doc: "REST port",
		parse: into(func(c *Config) *int { return &c.HTTPPort }, port)},
	{env: "GRPC_PORT", flag: "grpc-port", def: "9090", doc: "gRPC port",
		parse: into(func(c *Config) *int { return &c.GRPCPort }, port)},
	{env: "DEMO_CARTO_PORT", flag: "emulator-port", def: "8001", doc: "demo mode: the CARTO emulator's port",
		parse: into(func(c *Config) *int { return &c.EmulatorPort }, port)},
	{env: "GRPC_MAX_CONCURRENT_STREAMS", def: "100", doc: "calls open at once on one gRPC connection (1 to 10000)",
		parse: into(func(c *Config) *int { return &c.GRPC.MaxConcurrentStreams }, between(1, 10_000))},
	{env: "GRPC_MAX_HEALTH_WATCHES", def: "1000", doc: "health Watch streams open at once on the whole server (1 to 100000)",
		parse: into(func(c *Config) *int { return &c.GRPC.MaxHealthWatches }, between(1, 100_000))},
	{env: "GRPC_MAX_REFLECTION_STREAMS", def: "100", doc: "reflection streams open at once on the whole server (1 to 10000)",
		parse: into(func(c *Config) *int { return &c.GRPC.MaxReflectionStreams }, between(1, 10_000))},
	{env: "GRPC_MAX_CONNECTION_AGE", def: "30m", doc: "a gRPC connection is sent away after this long (10s to 24h)",
		parse: into(func(c *Config) *time.Duration { return &c.GRPC.MaxConnectionAge }, duration)},
	{env: "GRPC_MAX_CONNECTION_IDLE", def: "15m", doc: "a gRPC connection without a call for this long is closed (10s to 24h)",
		parse: into(func(c *Config) *time.Duration { return &c.GRPC.MaxConnectionIdle }, duration)},
	{env: "GRPC_KEEPALIVE_MIN_TIME", def: "10s", doc: "the shortest ping interval a gRPC client may use (1s to 1h)",
		parse: into(func(c *Config) *time.Duration { return &c.GRPC.KeepaliveMinTime }, duration)},

	{env: "JWT_SECRET", defDoc: "required", doc: "HS256 key for session tokens, at least 32 bytes",
		parse: func(c *Config, _, v string) error { c.JWTSecret = []byte(v); return nil }},
	{env: "SESSION_TTL", def: "1h", doc: "session token lifetime (1m to 168h)",
		parse: into(func(c *Config) *time.Duration { return &c.SessionTTL }, duration)},
	{env: "SESSION_SIGNING_ALG", def: "HS256", doc: "HS256 (with JWT_SECRET), or EdDSA / ES256 with rotated keys published at /.well-known/jwks.json",
		parse: into(func(c *Config) *string { return &c.SessionAlg }, text)},
	{env: "SESSION_KEY_ROTATION", def: "24h", doc: "how often a new asymmetric signing key replaces the last",
		parse: into(func(c *Config) *time.Duration { return &c.SessionKeyRotation }, duration)},

	{env: "CARTO_BASE_URL", defDoc: "required", doc: "your region's CARTO API base URL, e.g. https://gcp-us-east1.api.carto.com",
		parse: into(func(c *Config) *string { return &c.Carto.BaseURL }, text)},
	{env: "CARTO_API_BASE_URL", defDoc: "required", doc: "the CARTO guides' name for CARTO_BASE_URL (set one)",
		parse: baseURLAlias},
	{env: "CARTO_AUTH_URL", def: "https://auth.carto.com/oauth/token", doc: "CARTO's OAuth token endpoint",
		parse: into(func(c *Config) *string { return &c.Carto.AuthURL }, text)},
	{env: "CARTO_CLIENT_ID", defDoc: "required", doc: "the id of your CARTO machine-to-machine OAuth client",
		parse: into(func(c *Config) *string { return &c.Carto.ClientID }, text)},
	{env: "CARTO_CLIENT_SECRET", defDoc: "required", doc: "the secret of your CARTO machine-to-machine OAuth client",
		parse: into(func(c *Config) *string { return &c.Carto.ClientSecret }, text)},
	{env: "CARTO_CALL_TIMEOUT", def: "10s", doc: "each attempt of a call to CARTO (100ms to 1m)",
		parse: into(func(c *Config) *time.Duration { return &c.Carto.CallTimeout }, duration)},
	{env: "CARTO_BREAKER_COOLDOWN", def: "10s", doc: "after 5 failed calls in a row, how long calls to CARTO fail at once (100ms to 10m)",
		parse: into(func(c *Config) *time.Duration { return &c.Carto.BreakerCooldown }, duration)},

	{env: "TOKENBROKER_CONFIG", flag: "config", defDoc: "required", doc: "YAML file of users, group policies, identity providers and services",
		parse: readFile},
	{env: "CORS_ALLOWED_ORIGINS", def: "*", doc: "comma-separated browser origins allowed to call the REST API",
		parse: into(func(c *Config) *[]string { return &c.CORSOrigins }, list)},
	{env: "CARTO_GATEWAY_URL", flag: "carto-gateway-url", defDoc: "off (`http://localhost:PORT/carto` in demo mode)",
		doc:   "the URL browsers reach the CARTO gateway at, e.g. https://maps.example.com/carto; the broker serves it at its path, and groups with bound_parameters get it as api_base_url",
		parse: into(func(c *Config) *string { return &c.Gateway.URL }, text)},
	{env: "CARTO_GATEWAY_CACHE_TTL", def: "1m", doc: "how long the CARTO gateway reuses a map instantiation answer (0: not at all; at most 10m)",
		parse: into(func(c *Config) *time.Duration { return &c.Gateway.CacheTTL }, duration)},
	{env: "PUBLIC_QUERIES_PER_MINUTE", def: "60", doc: "public named queries one client address may run a minute without credentials (0: no bound)",
		parse: into(func(c *Config) *int { return &c.PublicQueriesPerMinute }, count)},
	{env: "QUERY_CACHE_BYTES", def: "67108864", defDoc: "64 MiB", doc: "bound of the named queries' result cache, per replica (0: no cache; a query's cache_ttl says how long its results are kept)",
		parse: into(func(c *Config) *int { return &c.QueryCacheBytes }, count)},
	{env: "TRUSTED_PROXIES", doc: "comma-separated addresses or CIDRs of the proxies (load balancers) whose X-Forwarded-For names the client; from any other peer it is ignored",
		parse: trustedProxies},
	{env: "LOG_FORMAT", flag: "log-format", def: "text", doc: "text or json",
		parse: into(func(c *Config) *string { return &c.LogFormat }, lower)},
	{env: "LOG_LEVEL", flag: "log-level", def: "info", doc: "debug, info, warn or error",
		parse: into(func(c *Config) *slog.Level { return &c.LogLevel }, logLevel)},
	{env: "TLS_CERT_FILE", doc: "serve gRPC and REST over TLS with this certificate (and TLS_KEY_FILE)",
		parse: into(func(c *Config) *string { return &c.TLS.CertFile }, text)},
	{env: "TLS_KEY_FILE", doc: "the private key of TLS_CERT_FILE",
		parse: into(func(c *Config) *string { return &c.TLS.KeyFile }, text)},
	{env: "TLS_CLIENT_CA_FILE", doc: "verify client certificates signed by this CA; needed for services:",
		parse: into(func(c *Config) *string { return &c.TLS.ClientCAFile }, text)},

	{env: "LOGIN_MAX_USER_FAILURES", def: "20", doc: "failed logins per username per window before a lockout (0: none)",
		parse: into(func(c *Config) *int { return &c.LoginMaxUserFailures }, count)},
	{env: "LOGIN_MAX_ADDR_FAILURES", def: "100", doc: "failed logins per client address per window (0: none)",
		parse: into(func(c *Config) *int { return &c.LoginMaxAddrFailures }, count)},
	{env: "LOGIN_LOCKOUT_WINDOW", def: "15m", doc: "the window of failed logins; a lockout lasts until it ends",
		parse: into(func(c *Config) *time.Duration { return &c.LoginWindow }, duration)},
	{env: "LOGIN_MAX_QUEUE", defDoc: "4 × GOMAXPROCS", doc: "password checks that may wait for a CPU (at least 1)",
		defFor: func(*Config) string { return strconv.Itoa(4 * runtime.GOMAXPROCS(0)) },
		parse:  into(func(c *Config) *int { return &c.LoginMaxQueue }, count)},
	{env: "LOGIN_QUEUE_TIMEOUT", def: "2s", doc: "the longest wait of a password check for a CPU (10ms to 1m)",
		parse: into(func(c *Config) *time.Duration { return &c.LoginQueueTimeout }, duration)},
	{env: "LOGIN_MAX_INFLIGHT_PER_ADDR", def: "2", doc: "password checks one client address may have running or waiting (0: no bound)",
		parse: into(func(c *Config) *int { return &c.LoginMaxPerAddr }, count)},
	{env: "AUDIT_LOG", defDoc: "with the other logs", doc: "where audit events go: stdout, off, or a file path",
		parse: into(func(c *Config) *string { return &c.AuditLog }, text)},

	{env: "REDIS_URL", doc: "the Redis server, Sentinels or Cluster of the redis store",
		parse: into(func(c *Config) *string { return &c.Store.RedisURL }, text)},
	{env: "TOKENBROKER_STORE", flag: "store", defDoc: "`redis` if `REDIS_URL` is set, else `bbolt` (`memory` in demo mode)",
		doc: "where tokens and revocations are kept: memory, bbolt or redis", defFor: defaultStore,
		parse: into(func(c *Config) *string { return &c.Store.Kind }, lower)},
	{env: "TOKENBROKER_DB", flag: "db", def: "tokenbroker.db", doc: "the bbolt file",
		parse: into(func(c *Config) *string { return &c.Store.Path }, text)},
	{env: "TOKENBROKER_STORE_KEY", defDoc: "required for bbolt and Redis", doc: "32 bytes, base64: encrypts tokens at rest",
		parse: storeKey},
	{env: "TOKENBROKER_DEPLOYMENT", def: "default", doc: "names this deployment's tokens at CARTO",
		parse: into(func(c *Config) *string { return &c.Deployment }, text)},
	{env: "MAX_LIVE_TOKENS", def: "500", doc: "ceiling on live CARTO tokens held (0: none)",
		parse: into(func(c *Config) *int { return &c.MaxLiveTokens }, count)},
	{env: "MAX_MINTS_PER_HOUR", def: "300", doc: "ceiling on token creations per clock hour (0: none)",
		parse: into(func(c *Config) *int { return &c.MaxMintsPerHour }, count)},
	{env: "MAX_MINTS_PER_GROUP_PER_HOUR", defDoc: "a tenth of `MAX_MINTS_PER_HOUR`, at least 10 (at most all of it; none when it is 0)",
		doc:    "creations per clock hour one group's calls may cause (0: none)",
		defFor: func(c *Config) string { return strconv.Itoa(DefaultMaxMintsPerGroup(c.MaxMintsPerHour)) },
		parse:  into(func(c *Config) *int { return &c.MaxMintsPerGroupPerHour }, count)},
	{env: "REFRESH_RESERVE_PERCENT", def: "10", doc: "share (0-50 %) of the ceilings only background refreshes may use",
		parse: into(func(c *Config) *int { return &c.RefreshReservePercent }, count)},
	{env: "MAX_TOKEN_REVOCATIONS_PER_GROUP_PER_HOUR", def: "10", doc: "revocations of a group's CARTO token by its members per clock hour (0: none)",
		parse: into(func(c *Config) *int { return &c.MaxRevocationsPerGroupPerHour }, count)},
	{env: "CARTO_TOKEN_REVOKERS", def: "members", doc: "who may revoke a group's CARTO token: members (and admins), or admins",
		parse: into(func(c *Config) *bool { return &c.AdminsRevokeCartoTokens }, revokers)},
	{env: "RECONCILE_INTERVAL", def: "10m", doc: "how often stale and orphaned tokens are deleted at CARTO (0: only at start)",
		parse: into(func(c *Config) *time.Duration { return &c.ReconcileInterval }, duration)},
}

// name is how errors name the setting.
func (s setting) name() string {
	if s.env != "" {
		return s.env
	}
	return "--" + s.flag
}

// defaultValue is the value read when none is given.
func (s setting) defaultValue(c *Config) string {
	if s.defFor != nil {
		return s.defFor(c)
	}
	return s.def
}

// defaultText is the default as the README's table shows it.
func (s setting) defaultText() string {
	switch {
	case s.defDoc != "":
		return s.defDoc
	case s.def != "":
		return "`" + s.def + "`"
	}
	return ""
}

// read reads v, the value given ("" if none), into c. A value that cannot
// be read is reported, and the default takes its place, so that it is not
// reported again as out of range.
func (s setting) read(c *Config, v string) error {
	if s.parse == nil {
		return nil
	}
	def := s.defaultValue(c)
	if v == "" {
		v = def
	}
	err := s.parse(c, s.name(), v)
	if err != nil && def != "" {
		_ = s.parse(c, s.name(), def)
	}
	return err
}

// demoOr is demo in demo mode, otherwise other.
func demoOr(c *Config, demo, other string) string {
	if c.Demo {
		return demo
	}
	return other
}

// defaultStore is memory in demo mode, else redis if REDIS_URL is set,
// else bbolt.
func defaultStore(c *Config) string {
	switch {
	case c.Demo:
		return StoreMemory
	case c.Store.RedisURL != "":
		return StoreRedis
	}
	return StoreBolt
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

// plain is Markdown text without its code quotes, for the terminal.
func plain(s string) string { return strings.ReplaceAll(s, "`", "") }
