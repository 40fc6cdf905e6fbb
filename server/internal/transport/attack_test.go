package transport

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/server/internal/grpctest"
)

// serveWithin starts a gRPC server within lim and returns a health client.
func serveWithin(t *testing.T, lim Limits, opts ...grpc.ServerOption) healthpb.HealthClient {
	t.Helper()
	chain := testChain(slog.New(slog.DiscardHandler))
	gs, hs := NewGRPCServer(GRPCConfig{Service: fakeService{}, Chain: chain, Limits: lim, Options: opts})
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// Finding 5: a health Watch held open does not keep its connection past
// MaxConnectionAge + MaxConnectionAgeGrace.
func TestAttackHealthWatchHeldPastConnectionAge(t *testing.T) {
	h := serveWithin(t, Limits{MaxConnectionAge: 200 * time.Millisecond, MaxConnectionAgeGrace: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	w, err := h.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	_, err = w.Recv() // blocks until the server ends the connection
	took := time.Since(start)
	t.Logf("watch ended after %v: %v", took.Round(time.Millisecond), err)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("watch ended with %v, want UNAVAILABLE when the connection is closed", err)
	}
}

// Finding 5: the Watch bound is server-wide and frees a slot when a watch
// ends; other streams and unary calls are not counted.
func TestAttackHealthWatchBound(t *testing.T) {
	var ends grpctest.Ends
	h := serveWithin(t, Limits{MaxHealthWatches: 2}, ends.ServerOption())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := func(ctx context.Context) error {
		w, err := h.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		return err
	}
	first, endFirst := context.WithCancel(ctx)
	for _, c := range []context.Context{first, ctx} {
		if err := watch(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := watch(ctx); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("3rd watch, bound 2: %v", err)
	}
	if _, err := h.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check at the bound: %v", err)
	}
	// The first watch ends; once the server has finished it (the third,
	// refused, has ended already), its slot is free.
	endFirst()
	wctx, cancelWait := context.WithTimeout(ctx, 5*time.Second)
	defer cancelWait()
	if err := ends.Wait(wctx, healthpb.Health_Watch_FullMethodName, 2); err != nil {
		t.Fatal(err)
	}
	if err := watch(ctx); err != nil {
		t.Fatalf("a watch after one ended: %v", err)
	}
}
