package client_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A shared call that its starter's deadline ends is not the answer of a
// caller still in time: that caller starts a new one. The first call, the
// one the impatient caller starts, ends with that caller's deadline: through
// its context, or with DEADLINE_EXCEEDED at the deadline a moment before the
// context's own timer has fired (as gRPC may). Later calls go through.
func TestSharedCallOutlivesAnImpatientCaller(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		end  func(ctx context.Context) error // how the first call ends
	}{{
		name: "its context ends",
		end: func(ctx context.Context) error {
			<-ctx.Done()
			return status.FromContextError(ctx.Err()).Err()
		},
	}, {
		name: "it returns at the deadline, before the context's timer",
		end: func(ctx context.Context) error {
			d, _ := ctx.Deadline()
			<-time.After(time.Until(d)) // the deadline, not ctx.Done: its timer may not have fired yet
			return status.Error(codes.DeadlineExceeded, "context deadline exceeded")
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, nil)
			c, cnt := newClient(t, b, boston())
			if _, err := c.Login(t.Context()); err != nil {
				t.Fatal(err)
			}
			started := make(chan struct{})
			cnt.inject = func(ctx context.Context, method string, n int, _ []grpc.CallOption) error {
				if method == "IssueCartoToken" && n == 1 {
					close(started)
					return tt.end(ctx)
				}
				return nil
			}
			short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			impatient := make(chan error, 1)
			go func() { _, err := c.CartoToken(short); impatient <- err }()
			<-started // the impatient caller started the shared call
			tok, err := c.CartoToken(t.Context())
			if err != nil {
				t.Fatalf("the patient caller failed: %v", err)
			}
			if tok.Token == "" {
				t.Fatal("no token")
			}
			wantCode(t, <-impatient, codes.DeadlineExceeded)
		})
	}
}
