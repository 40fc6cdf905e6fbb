package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// These tests run the broker as real processes (this test binary re-run as
// main(), see TestMain) with brokertest's process harness, so they can be
// killed with SIGKILL and run as several replicas.

const bostonHash = "$2a$10$qN8jcbw5Vh/n23PA2JXl1OsgZNkQer1PUXFZZh75heal85AzWBkye" // "boston"

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

// brokerEnv is the environment of broker processes configured by the file
// at configPath, calling emu; extra settings (KEY=VALUE) come last, so they
// win.
func brokerEnv(t *testing.T, emu *brokertest.Emulator, configPath string, extra ...string) []string {
	t.Helper()
	s := brokertest.Prepare(t, brokertest.ConfigFile(configPath), brokertest.WithEmulator(emu))
	return append(s.Environ(), extra...)
}

// process is one broker process, with a gRPC client of it.
type process struct {
	*brokertest.Process
	t      *testing.T
	client tokenbrokerv1.TokenBrokerClient
}

// freePorts returns n distinct free ports: each is held until all are found,
// since two listeners closed in turn may be given the same one.
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

// startProcess starts a broker on ports the system picks and waits until
// it serves.
func startProcess(t *testing.T, env []string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = t.TempDir() // no .env file around
	cmd.Env = append([]string{"TOKENBROKER_TEST_RUN_MAIN=1"}, env...)
	bp := brokertest.StartProcess(t, cmd)
	conn, err := grpc.NewClient(bp.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &process{Process: bp, t: t, client: tokenbrokerv1.NewTokenBrokerClient(conn)}
}

// startProcessOn is startProcess on the given ports.
func startProcessOn(t *testing.T, httpPort, grpcPort int, env []string) *process {
	t.Helper()
	return startProcess(t, append(slices.Clip(env), "PORT="+strconv.Itoa(httpPort), "GRPC_PORT="+strconv.Itoa(grpcPort)))
}

// kill sends SIGKILL, as a crash would, and waits for the process to end.
func (p *process) kill() {
	if err := p.Kill(); err != nil {
		p.t.Error(err)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop() {
	p.t.Helper()
	if err := p.Stop(); err != nil {
		p.t.Fatalf("broker exited with %v:\n%s", err, p.Logs.String())
	}
}

func (p *process) alive() bool { return !p.Exited() }

// login returns a session token (REST).
func (p *process) login(t *testing.T) string {
	t.Helper()
	resp, err := http.Post(p.RESTURL+"/login", "application/json", strings.NewReader(`{"username":"user.boston@acme.com","password":"boston"}`))
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
