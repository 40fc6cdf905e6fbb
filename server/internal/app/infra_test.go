package app_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
)

func withRawAuthorization(v string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", v)
}

// What `grpcurl -plaintext host:port list` does, with no credentials; and the
// health service, unary and streaming.
func TestReflectionAndHealthArePublic(t *testing.T) {
	b := startBroker(t)
	stream, err := reflectionpb.NewServerReflectionClient(b.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !slices.Contains(names, "tokenbroker.v1.TokenBroker") || !slices.Contains(names, "grpc.health.v1.Health") {
		t.Fatalf("reflection lists %v", names)
	}
	_ = stream.CloseSend()

	h := healthpb.NewHealthClient(b.conn)
	if r, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", r, err)
	}
	w, err := h.Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v, %v", r, err)
	}
	if strings.Contains(b.logs.String(), "grpc.health") {
		t.Fatal("health checks are logged as requests")
	}
}

func TestCORS(t *testing.T) {
	b := startBroker(t, brokertest.Env(map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.acme.com"}))
	pre := func(origin string) *http.Response {
		return b.do(http.MethodOptions, "/carto-token", "", "", http.Header{
			"Origin":                         {origin},
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {"authorization,content-type"},
		})
	}
	resp := pre("https://app.acme.com")
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://app.acme.com" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	resp = pre("https://evil.example")
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("an unlisted origin was allowed")
	}
	resp = b.do(http.MethodPost, "/login", "", `{"username":"user.boston@acme.com","password":"boston"}`, http.Header{"Origin": {"https://app.acme.com"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.acme.com" {
		t.Fatalf("CORS on the response: %d %v", resp.StatusCode, resp.Header)
	}
}

// A request in flight when the broker is told to stop still gets its answer,
// over REST and over gRPC, and Run returns cleanly.
func TestGracefulShutdown(t *testing.T) {
	b := startBroker(t)
	// Two groups, so that each request makes its own call to CARTO.
	boston, ny := b.login("user.boston@acme.com", "boston"), b.login("user.ny@acme.com", "ny")
	b.sim.SetFaults(cartosim.Faults{Latency: 300 * time.Millisecond})
	rest := make(chan int, 1)
	go func() {
		code, _ := b.post("/carto-token", boston, "")
		rest <- code
	}()
	grpcDone := make(chan error, 1)
	go func() {
		_, err := b.grpc.IssueCartoToken(withBearer(ny), &tokenbrokerv1.IssueCartoTokenRequest{})
		grpcDone <- err
	}()
	// Both requests are now waiting on CARTO (held by the latency).
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := b.sim.WaitFor(ctx, func(s cartosim.Stats) bool { return s.CreateRequests >= 2 }); err != nil {
		t.Fatal(err)
	}
	if err := b.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if code := <-rest; code != http.StatusOK {
		t.Fatalf("in-flight REST request: %d", code)
	}
	if err := <-grpcDone; err != nil {
		t.Fatalf("in-flight gRPC request: %v", err)
	}
	// Stopped means stopped: new connections are refused.
	if _, err := http.Post(b.rest+"/login", "application/json", strings.NewReader("{}")); err == nil {
		t.Fatal("the REST port still answers after shutdown")
	}
}

// Demo mode: emulator in process, the reference users, no account.
func TestDemoMode(t *testing.T) {
	b := startBroker(t, brokertest.Demo())
	if b.sim == nil || !strings.HasPrefix(b.simURL, "http://127.0.0.1:") {
		t.Fatalf("demo emulator at %q", b.simURL)
	}
	session := b.login("user.boston@acme.com", "boston")
	_, tok := b.post("/carto-token", session, "")
	// The demo groups bind @groupcity: their API base URL is the broker's
	// CARTO gateway.
	if tok["city"] != "BOSTON" || b.gateway == "" || tok["api_base_url"] != b.gateway {
		t.Fatalf("demo token: %v (gateway %q)", tok, b.gateway)
	}
	if code, body := b.query("sql", tok["token"].(string), bostonSQL); code != http.StatusOK || len(cities(t, body)) != 1 {
		t.Fatalf("demo SQL: %d", code)
	}
	ny := b.login("user.ny@acme.com", "ny")
	_, nyTok := b.post("/carto-token", ny, "")
	if code, _ := b.query("sql", nyTok["token"].(string), nySQL); code != http.StatusForbidden {
		t.Fatalf("demo New York SQL (Maps only): %d", code)
	}
	if code, _ := b.query("maps", nyTok["token"].(string), nySQL); code != http.StatusOK {
		t.Fatalf("demo New York Maps: %d", code)
	}
}
