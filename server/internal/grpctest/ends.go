// Package grpctest holds what tests need to watch a gRPC server from
// outside: Ends tells a test when the server has finished a call.
package grpctest

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// Ends is a server's stats handler that counts the calls it has finished,
// per method. The server reports a call's end after the handler and every
// interceptor returned, so a test that waits on Ends knows the server is
// done with a call (it released the slot of a stream its client cancelled,
// say) instead of retrying until it is. The zero value is ready to use.
type Ends struct {
	mu    sync.Mutex
	ended map[string]int
	// changed is closed at the next end; nil until Wait waits on it.
	changed chan struct{}
}

// ServerOption installs e on a server.
func (e *Ends) ServerOption() grpc.ServerOption { return grpc.StatsHandler(e) }

// Wait waits until n calls of method (its full name, e.g.
// "/grpc.health.v1.Health/Watch") have ended, or ctx ends.
func (e *Ends) Wait(ctx context.Context, method string, n int) error {
	for {
		e.mu.Lock()
		got := e.ended[method]
		if e.changed == nil {
			e.changed = make(chan struct{})
		}
		changed := e.changed
		e.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("grpctest: %d of %d calls of %s ended: %w", got, n, method, context.Cause(ctx))
		}
	}
}

type methodKey struct{}

// TagRPC implements stats.Handler: it remembers the call's method.
func (e *Ends) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

// HandleRPC implements stats.Handler: it counts the call's end.
func (e *Ends) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.End); !ok {
		return
	}
	method, _ := ctx.Value(methodKey{}).(string)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended == nil {
		e.ended = map[string]int{}
	}
	e.ended[method]++
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
}

// TagConn implements stats.Handler.
func (e *Ends) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler.
func (e *Ends) HandleConn(context.Context, stats.ConnStats) {}
