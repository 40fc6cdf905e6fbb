package app_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/telemetry"
)

// metricValue reads one sample of a Prometheus text exposition, -1 if absent.
func metricValue(t *testing.T, exposition, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(exposition)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (b *broker) get200(path string) string {
	b.t.Helper()
	resp := b.do(http.MethodGet, path, "", "", nil)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	return string(raw)
}

// After real traffic, /metrics shows every series with plausible values,
// and no label holds a username, a group or a token.
func TestMetrics(t *testing.T) {
	b := startBroker(t)
	session := b.login("user.boston@acme.com", "boston")
	_, tok := b.post("/carto-token", session, "")
	for range 3 {
		b.post("/carto-token", session, "")
	}
	b.post("/login", "", `{"username":"user.boston@acme.com","password":"wrong"}`)
	ny := b.login("user.ny@acme.com", "ny")
	b.sim.SetFaults(cartosim.Faults{Outage: cartosim.OutageUnavailable, Scope: cartosim.ScopeTokens})
	b.post("/carto-token", ny, "") // a CARTO error
	b.sim.SetFaults(cartosim.Faults{})
	b.post("/v1/revoke", session, `{"carto_token":"`+tok["token"].(string)+`"}`)

	m := b.get200("/metrics")
	want := map[string]func(float64) bool{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="IssueCartoToken",grpc_service="tokenbroker.v1.TokenBroker",grpc_type="unary"}`:          func(v float64) bool { return v == 4 },
		`grpc_server_handled_total{grpc_code="Unauthenticated",grpc_method="Login",grpc_service="tokenbroker.v1.TokenBroker",grpc_type="unary"}`:       func(v float64) bool { return v == 1 },
		`grpc_server_handled_total{grpc_code="Unavailable",grpc_method="IssueCartoToken",grpc_service="tokenbroker.v1.TokenBroker",grpc_type="unary"}`: func(v float64) bool { return v == 1 },
		`tokenbroker_issuances_total{result="mint"}`:                              func(v float64) bool { return v == 1 },
		`tokenbroker_issuances_total{result="hit"}`:                               func(v float64) bool { return v == 3 },
		`tokenbroker_tokens_minted_total`:                                         func(v float64) bool { return v == 1 },
		`tokenbroker_carto_calls_total{endpoint="create",outcome="ok"}`:           func(v float64) bool { return v == 1 },
		`tokenbroker_carto_calls_total{endpoint="create",outcome="server_error"}`: func(v float64) bool { return v == 1 },
		`tokenbroker_carto_calls_total{endpoint="oauth",outcome="ok"}`:            func(v float64) bool { return v == 1 },
		`tokenbroker_carto_calls_total{endpoint="delete",outcome="ok"}`:           func(v float64) bool { return v == 1 },
		`tokenbroker_logins_total{outcome="success"}`:                             func(v float64) bool { return v == 2 },
		`tokenbroker_logins_total{outcome="failure"}`:                             func(v float64) bool { return v == 1 },
		`tokenbroker_revocations_total{outcome="success",target="carto_token"}`:   func(v float64) bool { return v == 1 },
		`tokenbroker_live_tokens`:                                                 func(v float64) bool { return v == 0 },
		`tokenbroker_live_tokens_headroom`:                                        func(v float64) bool { return v == 500 },
		`tokenbroker_mints_headroom`:                                              func(v float64) bool { return v == 299 }, // the failed creation gave its place back
		`tokenbroker_carto_call_seconds_count{endpoint="create"}`:                 func(v float64) bool { return v == 2 },
		`grpc_server_handling_seconds_count{grpc_method="IssueCartoToken",grpc_service="tokenbroker.v1.TokenBroker",grpc_type="unary"}`: func(v float64) bool { return v == 5 },
	}
	for series, ok := range want {
		if v := metricValue(t, m, series); !ok(v) {
			t.Errorf("%s = %v", series, v)
		}
	}
	for _, leak := range []string{"user.boston", "BOSTON", "NEW YORK", session, tok["token"].(string), brokertest.CartoClientSecret} {
		if strings.Contains(m, leak) {
			t.Errorf("/metrics contains %q", leak)
		}
	}
	if strings.Contains(b.logs.String(), "wrong") || strings.Contains(b.logs.String(), tok["token"].(string)) {
		t.Error("a password or token reached the log")
	}
}

// Request ids: a caller's is kept and returned, one is made otherwise, and
// every log line of the request carries it.
func TestRequestIDs(t *testing.T) {
	b := startBroker(t)
	resp := b.do(http.MethodPost, "/login", "", `{"username":"user.boston@acme.com","password":"boston"}`, http.Header{"X-Request-Id": {"req-abc.123"}})
	session := decode(t, resp)["token"].(string)
	if resp.Header.Get("X-Request-Id") != "req-abc.123" {
		t.Fatalf("X-Request-Id = %q", resp.Header.Get("X-Request-Id"))
	}
	resp = b.do(http.MethodPost, "/carto-token", "", "", http.Header{"X-Request-Id": {"bad id with spaces"}})
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); id == "" || id == "bad id with spaces" || resp.StatusCode != 401 {
		t.Fatalf("an unusable id was kept or none made: %q (%d)", id, resp.StatusCode)
	}
	var hdr metadata.MD
	if _, err := b.grpc.IssueCartoToken(withBearer(session), &tokenbrokerv1.IssueCartoTokenRequest{}, grpc.Header(&hdr)); err != nil || len(hdr.Get("x-request-id")) != 1 {
		t.Fatalf("gRPC x-request-id: %v %v", hdr, err)
	}
	var lines int
	for _, l := range strings.Split(b.logs.String(), "\n") {
		if strings.Contains(l, `"request_id":"req-abc.123"`) {
			lines++
		}
	}
	if lines < 2 { // the audit line and the request log line
		t.Fatalf("%d log lines carry the request id:\n%s", lines, b.logs.String())
	}
}

func TestProbesAndOpenAPI(t *testing.T) {
	b := startBroker(t, brokertest.Env(map[string]string{"CARTO_BREAKER_COOLDOWN": "30s"}))
	if s := b.get200("/healthz"); !strings.Contains(s, "alive") {
		t.Fatalf("healthz: %s", s)
	}
	if s := b.get200("/readyz"); !strings.Contains(s, `"status":"ready"`) {
		t.Fatalf("readyz: %s", s)
	}
	spec := b.get200("/openapi.json")
	want, err := os.ReadFile("../apidoc/openapi/tokenbroker/v1/tokenbroker.swagger.json")
	if err != nil || spec != string(want) || !strings.Contains(spec, "/v1/carto-token") {
		t.Fatal("/openapi.json is not the generated document")
	}
	// The demo page exists in demo mode only.
	for _, path := range []string{"/", "/demo/app.js"} {
		resp := b.do(http.MethodGet, path, "", "", nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s outside demo mode: %d, want 404", path, resp.StatusCode)
		}
	}

	// CARTO down (breaker open) with nothing cached: not ready.
	b.sim.SetFaults(cartosim.Faults{Outage: cartosim.OutageUnavailable})
	session := b.login("user.boston@acme.com", "boston")
	for range 6 {
		b.post("/carto-token", session, "")
	}
	resp := b.do(http.MethodGet, "/readyz", "", "", nil)
	body := decode(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body["checks"].(map[string]any)["carto"].(string), "no token cached") {
		t.Fatalf("readyz with CARTO down and nothing cached: %d %v", resp.StatusCode, body)
	}
	b.checkHealth(healthpb.HealthCheckResponse_NOT_SERVING) // gRPC health agrees
}

// An OTLP collector (a real gRPC server implementing the trace service)
// receives the spans of one issuance, with the CARTO call as a child span.
func TestTracingToOTLP(t *testing.T) {
	col := startCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+col.addr)
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	tracing, err := telemetry.Setup(context.Background(), os.LookupEnv)
	if err != nil || !tracing.Enabled {
		t.Fatalf("tracing: %v %v", tracing.Enabled, err)
	}
	b := startBroker(t, brokertest.AppOptions(app.WithTracing(tracing)))
	session := b.login("user.boston@acme.com", "boston")
	if _, err := b.grpc.IssueCartoToken(withBearer(session), &tokenbrokerv1.IssueCartoTokenRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := b.stop(); err != nil { // flushes the spans
		t.Fatal(err)
	}
	spans := col.spans()
	var issue *tracepb.Span
	for _, s := range spans {
		if s.GetName() == "tokenbroker.v1.TokenBroker/IssueCartoToken" && s.GetKind() == tracepb.Span_SPAN_KIND_SERVER {
			issue = s
		}
	}
	if issue == nil {
		t.Fatalf("no IssueCartoToken server span among %d spans", len(spans))
	}
	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	var cartoCalls []string
	for _, s := range spans {
		if s.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || !bytes.Equal(s.GetTraceId(), issue.GetTraceId()) {
			continue
		}
		// Walk up: the CARTO call descends from the issuance.
		for p := byID[hex.EncodeToString(s.GetParentSpanId())]; p != nil; p = byID[hex.EncodeToString(p.GetParentSpanId())] {
			if p == issue {
				cartoCalls = append(cartoCalls, s.GetName()+" "+urlOf(s))
				break
			}
		}
	}
	t.Logf("%d spans; the issuance's trace %x holds CARTO calls %v", len(spans), issue.GetTraceId(), cartoCalls)
	// The token creation at CARTO is a descendant of the issuance. (The
	// OAuth token was fetched at start, by the reconciler, in its own trace.)
	if len(cartoCalls) != 1 || !strings.HasPrefix(cartoCalls[0], "HTTP POST") || !strings.HasSuffix(cartoCalls[0], "/v3/tokens") {
		t.Fatalf("CARTO calls under the issuance: %v", cartoCalls)
	}
}

// urlOf is a client span's URL attribute.
func urlOf(s *tracepb.Span) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == "url.full" || a.GetKey() == "http.url" {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// collector is an in-process OTLP trace collector.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string
	mu   sync.Mutex
	got  []*tracepb.Span
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{addr: ln.Addr().String()}
	s := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(s, c)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return c
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.got = append(c.got, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// spans returns the spans received. The broker's stop flushes its spans:
// Run returns after the exporter's last Export call was answered, so they
// are all here once it has.
func (c *collector) spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.got...)
}
