package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const hash10 = "$2a$10$qN8jcbw5Vh/n23PA2JXl1OsgZNkQer1PUXFZZh75heal85AzWBkye"

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// valid returns a complete environment with a users file.
func valid(t *testing.T, dir string) map[string]string {
	return map[string]string{
		"JWT_SECRET":          strings.Repeat("k", 32),
		"CARTO_BASE_URL":      "https://gcp-us-east1.api.carto.com",
		"CARTO_CLIENT_ID":     "id",
		"CARTO_CLIENT_SECRET": "secret",
		// openssl rand -base64 32
		"TOKENBROKER_STORE_KEY": "q1Yt9vWcZ3m0xJ7aR2bN5pL8sD4fG6hK0uE1iO3yT9w=",
		"TOKENBROKER_CONFIG":    write(t, dir, "tb.yaml", "users:\n  - {username: a@acme.com, password_hash: \""+hash10+"\", group: BOSTON}\n"),
	}
}

func TestLoadDefaultsAndPrecedence(t *testing.T) {
	dir := t.TempDir()
	env := valid(t, dir)
	env["PORT"] = "8100"
	dotenv := write(t, dir, ".env", "# comment\nexport GRPC_PORT=9100\nPORT=1 # overridden by the environment\nSESSION_TTL=\"2h\"\nCORS_ALLOWED_ORIGINS='https://a.example, https://b.example'\n")
	c, err := Load([]string{"--env-file", dotenv, "--grpc-port", "9200"}, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPPort != 8100 || c.GRPCPort != 9200 || c.SessionTTL != 2*time.Hour {
		t.Fatalf("ports %d/%d ttl %v: want env over .env, flag over both", c.HTTPPort, c.GRPCPort, c.SessionTTL)
	}
	if strings.Join(c.CORSOrigins, " ") != "https://a.example https://b.example" {
		t.Fatalf("CORS origins %v", c.CORSOrigins)
	}
	if c.LoginMaxQueue != 4*runtime.GOMAXPROCS(0) || c.LoginQueueTimeout != 2*time.Second || c.LoginMaxPerAddr != 2 {
		t.Fatalf("login admission defaults: queue %d, timeout %s, per address %d", c.LoginMaxQueue, c.LoginQueueTimeout, c.LoginMaxPerAddr)
	}
	if c.Carto.AuthURL != "https://auth.carto.com/oauth/token" || c.SessionIssuer != DefaultIssuer {
		t.Fatalf("defaults: %+v", c)
	}
	// With no groups: section every group gets the reference policy.
	if len(c.Groups) != 0 || c.DefaultPolicy == nil || c.DefaultPolicy.AllowedAPIs[0] != "maps" {
		t.Fatalf("policies: %v %+v", c.Groups, c.DefaultPolicy)
	}
	if v := c.LogValue().String(); strings.Contains(v, "secret") || strings.Contains(v, strings.Repeat("k", 32)) {
		t.Fatalf("LogValue shows a secret: %s", v)
	}
}

func TestCartoAPIBaseURLAlias(t *testing.T) {
	dir := t.TempDir()
	env := valid(t, dir)
	delete(env, "CARTO_BASE_URL")
	env["CARTO_API_BASE_URL"] = "https://gcp-europe-west1.api.carto.com"
	c, err := Load([]string{"--env-file="}, envOf(env))
	if err != nil || c.Carto.BaseURL != env["CARTO_API_BASE_URL"] {
		t.Fatalf("alias: %v %v", c.Carto.BaseURL, err)
	}
	env["CARTO_BASE_URL"] = "https://gcp-us-east1.api.carto.com"
	if _, err := Load([]string{"--env-file="}, envOf(env)); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("conflicting base URLs: %v", err)
	}
}

func TestValidationReportsEverything(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		yaml string
		want []string
	}{
		{"nothing", map[string]string{}, "", []string{"JWT_SECRET is not set", "CARTO_BASE_URL is not set", "CARTO_CLIENT_ID is not set", "CARTO_CLIENT_SECRET is not set", "no user store", "TOKENBROKER_STORE_KEY is not set"}},
		{"bad store settings", map[string]string{"TOKENBROKER_STORE": "etcd", "TOKENBROKER_STORE_KEY": "short", "TOKENBROKER_DEPLOYMENT": "a/b", "MAX_LIVE_TOKENS": "-1", "MAX_MINTS_PER_HOUR": "many", "RECONCILE_INTERVAL": "5s"},
			"", []string{"TOKENBROKER_STORE \"etcd\"", "TOKENBROKER_STORE_KEY: key is not base64", "TOKENBROKER_DEPLOYMENT \"a/b\"", "MAX_LIVE_TOKENS", "MAX_MINTS_PER_HOUR", "RECONCILE_INTERVAL 5s"}},
		{"bad login limits", map[string]string{"LOGIN_MAX_QUEUE": "0", "LOGIN_QUEUE_TIMEOUT": "5ms", "LOGIN_MAX_INFLIGHT_PER_ADDR": "two"},
			"", []string{"LOGIN_MAX_QUEUE is 0", "LOGIN_QUEUE_TIMEOUT 5ms", "LOGIN_MAX_INFLIGHT_PER_ADDR: \"two\""}},
		{"redis without URL", map[string]string{"TOKENBROKER_STORE": "redis"}, "", []string{"REDIS_URL is not set"}},
		{"bad fairness settings", map[string]string{"MAX_MINTS_PER_HOUR": "100", "MAX_MINTS_PER_GROUP_PER_HOUR": "200", "MAX_TOKEN_REVOCATIONS_PER_GROUP_PER_HOUR": "x", "REFRESH_RESERVE_PERCENT": "60", "CARTO_TOKEN_REVOKERS": "everyone"},
			"", []string{"MAX_MINTS_PER_GROUP_PER_HOUR 200 is above MAX_MINTS_PER_HOUR 100", "MAX_TOKEN_REVOCATIONS_PER_GROUP_PER_HOUR: \"x\"", "REFRESH_RESERVE_PERCENT 60 is above 50", "CARTO_TOKEN_REVOKERS: \"everyone\""}},
		{"bad scalars", map[string]string{"PORT": "http", "GRPC_PORT": "70000", "SESSION_TTL": "forever", "LOG_LEVEL": "loud", "LOG_FORMAT": "xml", "JWT_SECRET": "short", "CARTO_BASE_URL": "gcp-us-east1", "CARTO_AUTH_URL": "ftp://x"},
			"", []string{"PORT: \"http\"", "GRPC_PORT: \"70000\"", "SESSION_TTL", "LOG_LEVEL", "LOG_FORMAT", "JWT_SECRET is 5 bytes", "CARTO_BASE_URL: \"gcp-us-east1\"", "CARTO_AUTH_URL"}},
		{"unknown YAML field", nil, "users:\n  - {username: a, passwd: x, group: G}\n", []string{"line 2: unknown key passwd under users:"}},
		{"unknown YAML fields in several places", nil, "users:\n  - {username: a, password_hash: x, group: G}\ngroups:\n  G:\n    grant: []\nqueries:\n  - {name: q, sqll: x}\n",
			[]string{"line 5: unknown key grant under a group of groups:", "line 7: unknown key sqll under queries:"}},
		{"bad users and groups", nil, `
users:
  - {username: a@acme.com, password_hash: plain, group: BOSTON}
  - {username: b@acme.com, password_hash: "` + hash10 + `", group: CHICAGO}
groups:
  BOSTON:
    grants: [{connection: carto_dw, source: "SELECT {{city}}"}]
    allowed_apis: [maps, tiles]
    referers: ["https://app.acme.com/"]
`, []string{"not a bcrypt hash", "unknown placeholder", "unknown API \"tiles\"", "trailing slash", "group \"CHICAGO\", which has no policy"}},
		{"no users", nil, "groups: {}\n", []string{"has no users"}},
		{"bad queries", nil, `
users:
  - {username: a@acme.com, password_hash: "` + hash10 + `", group: BOSTON}
queries:
  - name: stores
    connection: carto_dw
    sql: "SELECT * FROM t WHERE city = @city AND kind = @kind"
    apis: [sql]
    groups: [BOSTON]
    params:
      - {name: city, bind: group}
  - name: open
    connection: carto_dw
    sql: "SELECT * FROM t WHERE city = @city"
    apis: [maps]
    public: true
    params:
      - {name: city, bind: group}
`, []string{`queries: query "stores": sql uses @kind, which is not declared under params`, `queries: query "open": parameter city: a public query has no caller: it cannot bind group`}},
		{"gateway without a path of its own", map[string]string{"CARTO_GATEWAY_URL": "https://maps.example.com/", "CARTO_GATEWAY_CACHE_TTL": "1h"},
			"", []string{"CARTO_GATEWAY_URL \"https://maps.example.com/\" needs a path of its own", "CARTO_GATEWAY_CACHE_TTL 1h0m0s is outside"}},
		{"gateway on the API's path", map[string]string{"CARTO_GATEWAY_URL": "https://maps.example.com/v1/carto"}, "", []string{"path /v1/carto is the API's"}},
		{"gateway not a web URL", map[string]string{"CARTO_GATEWAY_URL": "ftp://maps.example.com/carto?x=1"}, "", []string{"must be an http(s) URL without query"}},
		{"gateway path with a pattern", map[string]string{"CARTO_GATEWAY_URL": "https://maps.example.com/{carto}"}, "", []string{"may hold only letters"}},
		{"bad bound parameters", nil, `
users:
  - {username: a@acme.com, password_hash: "` + hash10 + `", group: BOSTON}
groups:
  BOSTON:
    grants: [{connection: carto_dw, source: "SELECT * FROM t WHERE city = {{group}}"}]
    allowed_apis: [maps]
    bound_parameters: {"group city": "{{group}}", usercity: "{{user}}"}
`, []string{"\"group city\" is not a query parameter name", "usercity is bound to \"{{user}}\"; only {{group}} is supported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = valid(t, dir)
			}
			if tt.yaml != "" {
				env["TOKENBROKER_CONFIG"] = write(t, t.TempDir(), "tb.yaml", tt.yaml)
			}
			_, err := Load([]string{"--env-file="}, envOf(env))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestDemo(t *testing.T) {
	c, err := Load([]string{"--demo", "--env-file="}, envOf(map[string]string{"CARTO_CLIENT_SECRET": "ignored"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.JWTSecret) < 32 || len(c.Users) != 3 || c.Carto.ClientSecret != "" || c.Host != "127.0.0.1" {
		t.Fatalf("demo config: users %d, secret %d bytes, carto %+v, host %q", len(c.Users), len(c.JWTSecret), c.Carto, c.Host)
	}
	// What validation built is carried, so the app builds none of it again.
	if c.Built.Users == nil || c.Built.Policies == nil {
		t.Fatalf("demo config: built users %v, policies %v", c.Built.Users, c.Built.Policies)
	}
	if u, err := c.Built.Users.Authenticate(context.Background(), "user.boston@acme.com", "boston"); err != nil || u.Group != "BOSTON" {
		t.Fatalf("demo user from Built.Users: %+v, %v", u, err)
	}
	for _, g := range []string{"BOSTON", "NEW YORK"} {
		// The guide's frontend works through the gateway: each demo policy
		// binds @groupcity, and the gateway is served at /carto.
		p, err := c.Built.Policies.For(g)
		if err != nil || len(p.Templates) != 1 || p.Templates[0].Param != "groupcity" {
			t.Fatalf("demo policy of %s from Built.Policies: %+v, %v", g, p, err)
		}
	}
	if c.Gateway.URL != "" || c.Gateway.Path(c.Demo) != "/carto" || c.Gateway.CacheTTL != time.Minute {
		t.Fatalf("demo gateway: %+v at %q", c.Gateway, c.Gateway.Path(c.Demo))
	}
	d2, _ := Load([]string{"--demo", "--env-file="}, envOf(nil))
	if string(d2.JWTSecret) == string(c.JWTSecret) {
		t.Fatal("demo secrets repeat")
	}
}

func TestParseDotenv(t *testing.T) {
	got, err := parseDotenv(strings.NewReader("A=1\n  B = two words # c\nC=\"x\\ny\"\nD='#not comment'\nexport E=e\n\n# x=y\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "two words", "C": "x\ny", "D": "#not comment", "E": "e"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, err := parseDotenv(strings.NewReader("no equals sign\n")); err == nil {
		t.Fatal("accepted a line without =")
	}
}

func TestStoreSelection(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantKind string
	}{
		{"default is bbolt", nil, nil, StoreBolt},
		{"REDIS_URL selects redis", nil, map[string]string{"REDIS_URL": "redis://127.0.0.1:6379"}, StoreRedis},
		{"explicit memory", nil, map[string]string{"TOKENBROKER_STORE": "memory"}, StoreMemory},
		{"flag over env", []string{"--store", "memory"}, map[string]string{"TOKENBROKER_STORE": "bbolt"}, StoreMemory},
		{"demo is memory", []string{"--demo"}, nil, StoreMemory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := valid(t, dir)
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := Load(append([]string{"--env-file="}, tt.args...), envOf(env))
			if err != nil {
				t.Fatal(err)
			}
			if c.Store.Kind != tt.wantKind || len(c.Store.Key) != 32 || c.Store.Path != "tokenbroker.db" {
				t.Fatalf("store %+v, want kind %s", c.Store, tt.wantKind)
			}
			if c.Deployment != "default" || c.MaxLiveTokens != 500 || c.MaxMintsPerHour != 300 || c.ReconcileInterval != 10*time.Minute {
				t.Fatalf("defaults: %+v", c)
			}
			if c.MaxMintsPerGroupPerHour != 30 || c.MaxRevocationsPerGroupPerHour != 10 || c.RefreshReservePercent != 10 || c.AdminsRevokeCartoTokens {
				t.Fatalf("fairness defaults: %+v", c)
			}
		})
	}
}

// A group's default share of the hourly ceiling: a tenth, at least 10, at
// most all of it, none without a ceiling.
func TestDefaultMaxMintsPerGroup(t *testing.T) {
	for _, tc := range []struct{ global, want int }{{0, 0}, {3, 3}, {40, 10}, {300, 30}, {5000, 500}} {
		if got := DefaultMaxMintsPerGroup(tc.global); got != tc.want {
			t.Errorf("DefaultMaxMintsPerGroup(%d) = %d, want %d", tc.global, got, tc.want)
		}
	}
}

func TestGatewayPath(t *testing.T) {
	tests := []struct {
		url  string
		demo bool
		want string
	}{
		{"", false, ""},
		{"", true, "/carto"},
		{"https://maps.example.com/carto", false, "/carto"},
		{"https://maps.example.com/apis/carto/", true, "/apis/carto"},
	}
	for _, tt := range tests {
		if got := (GatewayConfig{URL: tt.url}).Path(tt.demo); got != tt.want {
			t.Errorf("Path of %q (demo %v) = %q, want %q", tt.url, tt.demo, got, tt.want)
		}
	}
}

// The default .env is read when it is there; a file named with --env-file
// must be there; --env-file= reads none.
func TestEnvFileGivenMustExist(t *testing.T) {
	dir := t.TempDir()
	env := valid(t, dir)
	missing := filepath.Join(dir, "missing.env")
	if _, err := Load([]string{"--env-file", missing}, envOf(env)); err == nil || !strings.Contains(err.Error(), "missing.env (--env-file)") {
		t.Fatalf("a missing --env-file: %v, want an error naming it", err)
	}
	if _, err := Load([]string{"--env-file="}, envOf(env)); err != nil {
		t.Fatalf("--env-file= : %v", err)
	}
	t.Chdir(dir) // no .env here: the default is not required
	if _, err := Load(nil, envOf(env)); err != nil {
		t.Fatalf("no .env, none named: %v", err)
	}
}
