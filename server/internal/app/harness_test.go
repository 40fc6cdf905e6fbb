package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
	"github.com/tokenbroker/tokenbroker/server/internal/telemetry"
)

const (
	jwtSecret = "e2e-test-secret-e2e-test-secret-0123"
	// bcrypt hashes (cost 10) of "boston", "ny" and "obrien".
	bostonHash = "$2a$10$qN8jcbw5Vh/n23PA2JXl1OsgZNkQer1PUXFZZh75heal85AzWBkye"
	nyHash     = "$2a$10$KSc9nNFavwVbb83BMH9Ri.yvxVEvIl2ysDu0KsVYvbQmU4JU6NZAm"
)

const bostonSQL = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'BOSTON'"
const nySQL = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'NEW YORK'"

// testConfig is a TOKENBROKER_CONFIG like a customer's: Boston may use Maps
// and SQL, every other group gets the reference policy (Maps only).
const testConfig = `
users:
  - {username: user.boston@acme.com, password_hash: "` + bostonHash + `", group: BOSTON}
  - {username: user2.boston@acme.com, password_hash: "` + bostonHash + `", group: BOSTON}
  - {username: user.ny@acme.com, password_hash: "` + nyHash + `", group: NEW YORK}
groups:
  BOSTON:
    grants:
      - connection: carto_dw
        source: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = {{group}}"
    allowed_apis: [maps, sql]
  "*":
    grants:
      - connection: carto_dw
        source: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = {{group}}"
    allowed_apis: [maps]
`

// broker is a running TokenBroker wired by app.New from a real configuration,
// against a real CARTO emulator over loopback HTTP.
type broker struct {
	t      *testing.T
	app    *app.App
	sim    *cartosim.Sim
	simURL string
	rest   string // http://host:port
	grpc   tokenbrokerv1.TokenBrokerClient
	conn   *grpc.ClientConn
	logs   *logtest.Buffer
	stop   func() error
	// http is the REST client; with TLS it trusts the test CA (roots).
	http  *http.Client
	roots *x509.CertPool
}

// startBroker starts the broker; env entries override the defaults.
func startBroker(t *testing.T, env map[string]string) *broker {
	t.Helper()
	return startBrokerWith(t, testConfig, env)
}

// startBrokerOpts starts the broker with app options (tracing).
func startBrokerOpts(t *testing.T, env map[string]string, opts ...app.Option) *broker {
	t.Helper()
	return startBrokerWith(t, testConfig, env, opts...)
}

// startBrokerWith starts the broker with its own TOKENBROKER_CONFIG.
func startBrokerWith(t *testing.T, configYAML string, env map[string]string, opts ...app.Option) *broker {
	t.Helper()
	sim, err := cartosim.New(cartosim.Config{ClientID: "e2e-client", ClientSecret: "e2e-client-secret"})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "tokenbroker.yaml")
	if err := os.WriteFile(cfgFile, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"HOST":                "127.0.0.1",
		"PORT":                "0",
		"GRPC_PORT":           "0",
		"JWT_SECRET":          jwtSecret,
		"CARTO_BASE_URL":      simSrv.URL,
		"CARTO_AUTH_URL":      simSrv.URL + "/oauth/token",
		"CARTO_CLIENT_ID":     "e2e-client",
		"CARTO_CLIENT_SECRET": "e2e-client-secret",
		"TOKENBROKER_CONFIG":  cfgFile,
		// The default store: a bbolt file, sealed with this key.
		"TOKENBROKER_DB":        filepath.Join(dir, "tokenbroker.db"),
		"TOKENBROKER_STORE_KEY": "q1Yt9vWcZ3m0xJ7aR2bN5pL8sD4fG6hK0uE1iO3yT9w=",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load([]string{"--env-file", filepath.Join(dir, "none.env")}, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, sim: sim, simURL: simSrv.URL, logs: &logtest.Buffer{}}
	b.start(cfg, opts...)
	return b
}

func (b *broker) start(cfg config.Config, opts ...app.Option) {
	t := b.t
	log := slog.New(telemetry.LogHandler{Handler: slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})})
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log, opts...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.app = a
	b.rest, b.http = "http://"+a.HTTPAddr(), http.DefaultClient
	creds := insecure.NewCredentials()
	if cfg.TLS.Enabled() {
		// The tests sign the server's and the services' certificates with
		// one CA, the one the broker verifies clients with.
		pem, err := os.ReadFile(cfg.TLS.ClientCAFile)
		if err != nil {
			t.Fatal(err)
		}
		b.roots = x509.NewCertPool()
		b.roots.AppendCertsFromPEM(pem)
		tc := &tls.Config{RootCAs: b.roots}
		b.rest = "https://" + a.HTTPAddr()
		b.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		creds = credentials.NewTLS(tc)
	}
	if b.sim == nil {
		b.sim, b.simURL = a.Emulator(), a.EmulatorURL()
	}
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	b.conn, b.grpc = conn, tokenbrokerv1.NewTokenBrokerClient(conn)
	// Ready when health says so (it starts NOT_SERVING).
	h := healthpb.NewHealthClient(conn)
	for deadline := time.Now().Add(10 * time.Second); ; {
		r, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker not SERVING after 10s: %v %v", r, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopped := false
	b.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		defer conn.Close() // after the drain, so in-flight calls can finish
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(app.ShutdownTimeout + 5*time.Second):
			t.Fatal("broker did not stop")
			return nil
		}
	}
	t.Cleanup(func() {
		if err := b.stop(); err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
}

// login signs in over REST and returns the session token.
func (b *broker) login(user, password string) string {
	b.t.Helper()
	status, body := b.post("/login", "", `{"username":"`+user+`","password":"`+password+`"}`)
	if status != http.StatusOK {
		b.t.Fatalf("login %s: %d %v", user, status, body)
	}
	return body["token"].(string)
}

// post sends a REST request and decodes the JSON answer.
func (b *broker) post(path, bearer, body string) (int, map[string]any) {
	b.t.Helper()
	resp := b.do(http.MethodPost, path, bearer, body, nil)
	return resp.StatusCode, decode(b.t, resp)
}

func (b *broker) do(method, path, bearer, body string, hdr http.Header) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.rest+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("response %d is not JSON: %q", resp.StatusCode, raw)
		}
	}
	return m
}

// withBearer is a gRPC call context carrying a session token.
func withBearer(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// query calls one of the emulator's data APIs ("sql" or "maps") with an API
// access token, as a frontend would, and returns the status and JSON.
func (b *broker) query(api, token, sql string) (int, map[string]any) {
	b.t.Helper()
	u := b.simURL + "/v3/" + api + "/carto_dw/query?" + url.Values{"q": {sql}}.Encode()
	return b.get(u, token)
}

func (b *broker) get(u, token string) (int, map[string]any) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, decode(b.t, resp)
}

// cities lists the distinct city of each row of a SQL answer.
func cities(t *testing.T, body map[string]any) map[string]int {
	t.Helper()
	rows, ok := body["rows"].([]any)
	if !ok {
		t.Fatalf("no rows in %v", body)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.(map[string]any)["city"].(string)]++
	}
	return out
}

// windowTurned reports whether the fixed window of the given length that
// held start (the stores' counters count in windows from the zero time) has
// ended: counts made before and after are in different windows.
func windowTurned(start time.Time, window time.Duration) bool {
	return !start.Truncate(window).Equal(time.Now().Truncate(window))
}

// startDemoBroker starts the broker in demo mode (its own emulator, the
// demo users), as `tokenbroker --demo` does, on free loopback ports.
func startDemoBroker(t *testing.T) *broker {
	t.Helper()
	cfg, err := config.Load([]string{"--demo", "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0", "--emulator-port", "0", "--env-file", t.TempDir() + "/none"},
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, logs: &logtest.Buffer{}}
	b.start(cfg)
	return b
}
