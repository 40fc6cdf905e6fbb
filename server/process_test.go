package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
)

// These tests run the broker as real processes (this test binary re-run as
// main(), see TestMain), so they can be killed with SIGKILL and run as
// several replicas.

const (
	procJWTSecret = "process-test-secret-process-test-secret"
	procStoreKey  = "q1Yt9vWcZ3m0xJ7aR2bN5pL8sD4fG6hK0uE1iO3yT9w="
	bostonHash    = "$2a$10$qN8jcbw5Vh/n23PA2JXl1OsgZNkQer1PUXFZZh75heal85AzWBkye" // "boston"
)

// usersYAML is a config with the given Boston policy APIs.
func usersYAML(bostonAPIs string) string {
	return `users:
  - {username: user.boston@acme.com, password_hash: "` + bostonHash + `", group: BOSTON}
groups:
  BOSTON:
    grants: [{connection: carto_dw, source: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = {{group}}"}]
    allowed_apis: [` + bostonAPIs + `]
`
}

// emulator is a CARTO emulator in the test process, shared by the brokers.
type emulator struct {
	sim *cartosim.Sim
	url string
}

func startEmulator(t *testing.T) *emulator {
	t.Helper()
	sim, err := cartosim.New(cartosim.Config{ClientID: "proc-client", ClientSecret: "proc-client-secret"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &emulator{sim: sim, url: srv.URL}
}

// env is the environment of broker processes sharing one configuration.
func brokerEnv(t *testing.T, emu *emulator, configPath string, extra ...string) []string {
	return append([]string{
		"HOST=127.0.0.1",
		"JWT_SECRET=" + procJWTSecret,
		"CARTO_BASE_URL=" + emu.url,
		"CARTO_AUTH_URL=" + emu.url + "/oauth/token",
		"CARTO_CLIENT_ID=proc-client",
		"CARTO_CLIENT_SECRET=proc-client-secret",
		"TOKENBROKER_CONFIG=" + configPath,
		"TOKENBROKER_STORE_KEY=" + procStoreKey,
		"LOG_FORMAT=json",
	}, extra...)
}

// process is one broker process.
type process struct {
	t        *testing.T
	cmd      *exec.Cmd
	logs     *logtest.Buffer
	rest     string
	grpcAddr string
	conn     *grpc.ClientConn
	client   tokenbrokerv1.TokenBrokerClient
	exited   chan error
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freePorts returns n distinct free ports: each is held until all are found,
// since two calls of freePort may return the same one.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// startProcess starts a broker and waits until its health check says SERVING.
func startProcess(t *testing.T, env []string) *process {
	t.Helper()
	ports := freePorts(t, 2)
	return startProcessOn(t, ports[0], ports[1], env)
}

// startProcessOn is startProcess on the given ports.
func startProcessOn(t *testing.T, httpPort, grpcPort int, env []string) *process {
	t.Helper()
	p := &process{t: t, logs: &logtest.Buffer{}, exited: make(chan error, 1),
		rest:     "http://127.0.0.1:" + strconv.Itoa(httpPort),
		grpcAddr: "127.0.0.1:" + strconv.Itoa(grpcPort)}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = append([]string{"TOKENBROKER_TEST_RUN_MAIN=1", "PORT=" + strconv.Itoa(httpPort), "GRPC_PORT=" + strconv.Itoa(grpcPort)}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("broker %s log:\n%s", p.grpcAddr, p.logs.String())
		}
	})
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	p.conn, p.client = conn, tokenbrokerv1.NewTokenBrokerClient(conn)
	t.Cleanup(func() { conn.Close() })
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return p
		}
		select {
		case err := <-p.exited:
			t.Fatalf("broker exited during start: %v\n%s", err, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker not SERVING after 30s:\n%s", p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL, as a crash would, and waits for the process to end.
func (p *process) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Error("broker did not die")
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Fatalf("broker exited with %v:\n%s", err, p.logs.String())
		}
	case <-time.After(20 * time.Second):
		p.t.Fatal("broker did not stop on SIGTERM")
	}
}

func (p *process) alive() bool {
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return true
	}
}

// login returns a session token (REST).
func (p *process) login(t *testing.T) string {
	t.Helper()
	resp, err := http.Post(p.rest+"/login", "application/json", strings.NewReader(`{"username":"user.boston@acme.com","password":"boston"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Token == "" {
		t.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	return body.Token
}

// issue calls IssueCartoToken over gRPC.
func (p *process) issue(session string) (*tokenbrokerv1.IssueCartoTokenResponse, error) {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+session), 20*time.Second)
	defer cancel()
	return p.client.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{})
}

func (p *process) revoke(session string, target *tokenbrokerv1.RevokeTokenRequest) error {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+session), 10*time.Second)
	defer cancel()
	_, err := p.client.RevokeToken(ctx, target)
	return err
}

func logout() *tokenbrokerv1.RevokeTokenRequest {
	return &tokenbrokerv1.RevokeTokenRequest{Target: &tokenbrokerv1.RevokeTokenRequest_Session{Session: true}}
}

func revokeCarto(tok string) *tokenbrokerv1.RevokeTokenRequest {
	return &tokenbrokerv1.RevokeTokenRequest{Target: &tokenbrokerv1.RevokeTokenRequest_CartoToken{CartoToken: tok}}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
