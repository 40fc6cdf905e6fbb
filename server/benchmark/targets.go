package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/telemetry"
)

type throughputResults struct {
	echo, echoSized, grpcHit, httpBare, restHit result
}

// sizedEcho answers IssueCartoToken and RunQuery with fixed messages, the
// broker's own, and does nothing else: the transport cost of the broker's
// messages and metadata, without interceptors or work.
type sizedEcho struct {
	tokenbrokerv1.UnimplementedTokenBrokerServer
	resp *tokenbrokerv1.IssueCartoTokenResponse
	rows *tokenbrokerv1.RunQueryResponse
}

func (e sizedEcho) IssueCartoToken(context.Context, *tokenbrokerv1.IssueCartoTokenRequest) (*tokenbrokerv1.IssueCartoTokenResponse, error) {
	return e.resp, nil
}

func (e sizedEcho) RunQuery(context.Context, *tokenbrokerv1.RunQueryRequest) (*tokenbrokerv1.RunQueryResponse, error) {
	return e.rows, nil
}

// throughput runs the four closed-loop measurements.
func throughput(ctx context.Context, o options) (throughputResults, error) {
	var out throughputResults

	// Bare grpc-go: the health service on a server with no interceptors.
	echoAddr, stopEcho, err := startEcho()
	if err != nil {
		return out, err
	}
	defer stopEcho()
	echoConns, err := dial(echoAddr, o.conns)
	if err != nil {
		return out, err
	}
	defer closeAll(echoConns)
	echo := func() result {
		return drive(ctx, "bare grpc-go unary (health Check)", o.concurrency, o.duration, func(ctx context.Context, w int) error {
			_, err := healthpb.NewHealthClient(echoConns[w%len(echoConns)]).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		})
	}

	// The broker, in demo mode, with the emulator slowed as CARTO would be.
	b, stop, err := startBroker()
	if err != nil {
		return out, err
	}
	defer stop()
	b.Emulator.SetFaults(cartosim.Faults{Latency: o.latency})
	conns, err := dial(b.GRPCAddr, o.conns)
	if err != nil {
		return out, err
	}
	defer closeAll(conns)
	session, err := login(ctx, conns[0], "user.boston@acme.com", "boston")
	if err != nil {
		return out, err
	}
	md := metadata.Pairs("authorization", "Bearer "+session)
	clients := make([]tokenbrokerv1.TokenBrokerClient, len(conns))
	for i, c := range conns {
		clients[i] = tokenbrokerv1.NewTokenBrokerClient(c)
	}
	if _, err := clients[0].IssueCartoToken(metadata.NewOutgoingContext(ctx, md), &tokenbrokerv1.IssueCartoTokenRequest{}); err != nil {
		return out, fmt.Errorf("first issue: %w", err) // the mint: every later call is a hit
	}
	grpcHit := func() result {
		return drive(ctx, "broker gRPC IssueCartoToken (cache hit)", o.concurrency, o.duration, func(ctx context.Context, w int) error {
			_, err := clients[w%len(clients)].IssueCartoToken(metadata.NewOutgoingContext(ctx, md), &tokenbrokerv1.IssueCartoTokenRequest{})
			return err
		})
	}

	// Control: bare grpc-go answering the broker's own response to the same
	// metadata.
	resp, err := clients[0].IssueCartoToken(metadata.NewOutgoingContext(ctx, md), &tokenbrokerv1.IssueCartoTokenRequest{})
	if err != nil {
		return out, err
	}
	sizedAddr, stopSized, err := startSizedEcho(sizedEcho{resp: resp})
	if err != nil {
		return out, err
	}
	defer stopSized()
	sizedConns, err := dial(sizedAddr, o.conns)
	if err != nil {
		return out, err
	}
	defer closeAll(sizedConns)
	echoSized := func() result {
		return drive(ctx, "bare grpc-go, the broker's messages and metadata", o.concurrency, o.duration, func(ctx context.Context, w int) error {
			_, err := tokenbrokerv1.NewTokenBrokerClient(sizedConns[w%len(sizedConns)]).IssueCartoToken(metadata.NewOutgoingContext(ctx, md), &tokenbrokerv1.IssueCartoTokenRequest{})
			return err
		})
	}

	// Bare net/http: a handler answering JSON of the same size.
	bareURL, stopBare, err := startBareHTTP()
	if err != nil {
		return out, err
	}
	defer stopBare()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency, MaxConnsPerHost: o.concurrency}}
	post := func(ctx context.Context, url, auth string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	httpBare := func() result {
		return drive(ctx, "bare net/http JSON handler (same headers, same-size answer)", o.concurrency, o.duration, func(ctx context.Context, _ int) error {
			return post(ctx, bareURL, "Bearer "+session)
		})
	}
	restURL := b.RESTURL + "/carto-token"
	restHit := func() result {
		return drive(ctx, "broker REST POST /carto-token (cache hit)", o.concurrency, o.duration, func(ctx context.Context, _ int) error {
			return post(ctx, restURL, "Bearer "+session)
		})
	}
	// Rounds alternate the targets, so the machine's noise falls on all of
	// them alike; ratios are taken per round, and their median reported.
	for range o.rounds {
		out.echo = out.echo.merge(echo())
		out.grpcHit = out.grpcHit.merge(grpcHit())
		out.echoSized = out.echoSized.merge(echoSized())
		out.httpBare = out.httpBare.merge(httpBare())
		out.restHit = out.restHit.merge(restHit())
	}
	return out, nil
}

func startSizedEcho(e sizedEcho) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	s := grpc.NewServer()
	tokenbrokerv1.RegisterTokenBrokerServer(s, e)
	go func() { _ = s.Serve(ln) }()
	return ln.Addr().String(), s.Stop, nil
}

func startEcho() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(ln) }()
	return ln.Addr().String(), s.Stop, nil
}

// bareBody is about the size of the broker's answer.
var bareBody = map[string]any{
	"token":      strings.Repeat("x", 124),
	"expires_at": "2026-11-24T09:00:00Z", "group": "BOSTON", "city": "BOSTON",
	"grants":       []map[string]string{{"connection_name": "carto_dw", "source": "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'BOSTON'"}},
	"allowed_apis": []string{"maps", "sql"}, "referers": []string{}, "api_base_url": "http://127.0.0.1:8001",
}

func startBareHTTP() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(bareBody)
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/", func() { _ = srv.Close() }, nil
}

// startBroker starts a broker (brokertest's, demo mode unless opts say
// otherwise) whose log goes to a file, as a deployment's would: JSON lines,
// written in batches.
func startBroker(opts ...brokertest.Option) (*brokertest.Broker, func(), error) {
	logFile, err := os.CreateTemp("", "tokenbroker-bench-*.log")
	if err != nil {
		return nil, nil, err
	}
	logOut := telemetry.NewBufferedWriter(logFile, 100*time.Millisecond)
	closeLog := func() {
		logOut.Close()
		logFile.Close()
		os.Remove(logFile.Name())
	}
	b, err := brokertest.New(append(opts, brokertest.Logs(logOut))...)
	if err != nil {
		closeLog()
		return nil, nil, err
	}
	return b, func() { _ = b.Stop(); closeLog() }, nil
}

func dial(addr string, n int) ([]*grpc.ClientConn, error) {
	var out []*grpc.ClientConn
	for range n {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll(out)
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func closeAll(cs []*grpc.ClientConn) {
	for _, c := range cs {
		c.Close()
	}
}

func login(ctx context.Context, conn *grpc.ClientConn, user, pw string) (string, error) {
	r, err := tokenbrokerv1.NewTokenBrokerClient(conn).Login(ctx, &tokenbrokerv1.LoginRequest{Username: user, Password: pw})
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	return r.GetToken(), nil
}
