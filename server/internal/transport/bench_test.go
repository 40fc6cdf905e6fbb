package transport

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/metrics"
)

// BenchmarkChain: the interceptor chain around a handler that does nothing
// (recovery, request id, metrics, request log, authentication with a
// trivial authenticator): what every call pays before the service.
func BenchmarkChain(b *testing.B) {
	m := metrics.New(metrics.Gauges{})
	chain := NewChain(ChainConfig{Authenticator: fakeAuth{}, Logger: slog.New(slog.DiscardHandler), Metrics: m.GRPC, ErrorStatus: toStatus})
	// As on a server: incoming metadata and a stream to set headers on.
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer good"))
	ctx = grpc.NewContextWithServerTransportStream(ctx, &headerStream{})
	info := &grpc.UnaryServerInfo{FullMethod: tokenbrokerv1.TokenBroker_IssueCartoToken_FullMethodName}
	handler := func(ctx context.Context, req any) (any, error) { return req, nil }
	req := &tokenbrokerv1.IssueCartoTokenRequest{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := chain.Unary(ctx, req, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}

// headerStream is the part of a server stream that SetHeader uses.
type headerStream struct{ grpc.ServerTransportStream }

func (*headerStream) Method() string               { return tokenbrokerv1.TokenBroker_IssueCartoToken_FullMethodName }
func (*headerStream) SetHeader(metadata.MD) error  { return nil }
func (*headerStream) SendHeader(metadata.MD) error { return nil }
func (*headerStream) SetTrailer(metadata.MD) error { return nil }
