package client_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestSharedCallOutlivesAnImpatientCaller(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, cnt := newClient(t, b, boston())
	if _, err := c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The first call, the one the impatient caller starts, is answered
	// late: it ends with that caller's deadline. Later ones go through.
	started := make(chan struct{})
	cnt.inject = func(ctx context.Context, method string, n int, _ []grpc.CallOption) error {
		if method == "IssueCartoToken" && n == 1 {
			close(started)
			<-ctx.Done()
			return status.FromContextError(ctx.Err()).Err()
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
}

// A shared call that its starter's deadline ends is not the answer of a
// caller still in time, even when the call returns DEADLINE_EXCEEDED at that
// deadline a moment before the context's own timer has fired (as gRPC may).
func TestSharedCallEndedAtTheDeadlineIsRetried(t *testing.T) {
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
			d, _ := ctx.Deadline()
			<-time.After(time.Until(d)) // the deadline, not ctx.Done: its timer may not have fired yet
			return status.Error(codes.DeadlineExceeded, "context deadline exceeded")
		}
		return nil
	}
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	impatient := make(chan error, 1)
	go func() { _, err := c.CartoToken(short); impatient <- err }()
	<-started
	tok, err := c.CartoToken(t.Context())
	if err != nil {
		t.Fatalf("the patient caller failed: %v", err)
	}
	if tok.Token == "" {
		t.Fatal("no token")
	}
	wantCode(t, <-impatient, codes.DeadlineExceeded)
}
