package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
)

// healthNames are the names gRPC health answers for, as grpc-health-probe
// asks: the server as a whole, and the TokenBroker service.
var healthNames = []string{"", "tokenbroker.v1.TokenBroker"}

// fastReadiness re-evaluates readiness often, so a change shows at once.
var fastReadiness = brokertest.AppOptions(app.WithReadinessInterval(20 * time.Millisecond))

// awaitHealth waits, on a health Watch stream of each name, until it reports
// want (the loop re-evaluates readiness; nothing calls /readyz meanwhile).
func (b *broker) awaitHealth(want healthpb.HealthCheckResponse_ServingStatus) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := healthpb.NewHealthClient(b.conn)
	for _, name := range healthNames {
		w, err := h.Watch(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			b.t.Fatal(err)
		}
		for {
			r, err := w.Recv()
			if err != nil {
				b.t.Fatalf("health of %q: waiting for %v: %v", name, want, err)
			}
			if r.GetStatus() == want {
				break
			}
		}
	}
}

// checkHealth asserts what Check says for each name.
func (b *broker) checkHealth(want healthpb.HealthCheckResponse_ServingStatus) {
	b.t.Helper()
	h := healthpb.NewHealthClient(b.conn)
	for _, name := range healthNames {
		r, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
		if err != nil || r.GetStatus() != want {
			b.t.Fatalf("health of %q: %v, %v; want %v", name, r, err, want)
		}
	}
}

// probe is a probe's answer: its status code and the JSON body.
func (b *broker) probe(path string) (int, map[string]any) {
	b.t.Helper()
	resp := b.do(http.MethodGet, path, "", "", nil)
	return resp.StatusCode, decode(b.t, resp)
}

// readyAgrees asserts that /readyz says what gRPC health says, and that
// /healthz says alive whatever readiness is. It returns /readyz's checks.
func (b *broker) readyAgrees(ready bool) map[string]any {
	b.t.Helper()
	if code, body := b.probe("/healthz"); code != http.StatusOK || body["status"] != "alive" {
		b.t.Fatalf("/healthz: %d %v", code, body)
	}
	code, body := b.probe("/readyz")
	want, st := http.StatusOK, healthpb.HealthCheckResponse_SERVING
	if !ready {
		want, st = http.StatusServiceUnavailable, healthpb.HealthCheckResponse_NOT_SERVING
	}
	if code != want {
		b.t.Fatalf("/readyz: %d %v, want %d", code, body, want)
	}
	b.checkHealth(st)
	checks, _ := body["checks"].(map[string]any)
	return checks
}

func TestHealthReadyAgrees(t *testing.T) {
	b := startBroker(t)
	b.checkHealth(healthpb.HealthCheckResponse_SERVING)
	checks := b.readyAgrees(true)
	for _, k := range []string{"server", "store", "carto"} {
		if checks[k] != "ok" {
			t.Fatalf("/readyz checks %v", checks)
		}
	}
	_, err := healthpb.NewHealthClient(b.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "tokenbroker.v1.Other"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("an unknown service: %v, want NotFound", err)
	}
}

// Redis is killed: /readyz and gRPC health both say not ready (the process
// stays alive), and both say ready again once Redis is back.
func TestHealthReadyAgreesWhenRedisIsDown(t *testing.T) {
	rs := redistest.Start(t)
	b := startBroker(t, brokertest.Env(map[string]string{"REDIS_URL": rs.URL}), fastReadiness)
	b.awaitHealth(healthpb.HealthCheckResponse_SERVING)
	b.readyAgrees(true)

	rs.Kill()
	b.awaitHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	if checks := b.readyAgrees(false); checks["store"] != "unavailable" {
		t.Fatalf("/readyz checks with Redis down: %v", checks)
	}

	rs.Restart(t)
	b.awaitHealth(healthpb.HealthCheckResponse_SERVING)
	b.readyAgrees(true)
}

// CARTO refuses the broker's client secret: only an operator can fix that,
// so the broker is not ready, on /readyz and gRPC health alike.
func TestHealthReadyAgreesWhenCartoCredentialsAreRefused(t *testing.T) {
	b := startBroker(t, brokertest.Env(map[string]string{"CARTO_CLIENT_SECRET": "not-the-secret"}), fastReadiness)
	b.awaitHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	checks := b.readyAgrees(false)
	if c, _ := checks["carto"].(string); !strings.Contains(c, "refused") {
		t.Fatalf("/readyz checks with the secret refused: %v", checks)
	}
	if strings.Contains(b.logs.String(), "not-the-secret") {
		t.Fatal("the refused secret is logged")
	}
}
