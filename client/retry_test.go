package client_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

func TestRetriesUnavailable(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, cnt := newClient(t, b, boston())
	cnt.inject = func(_ context.Context, method string, n int, _ []grpc.CallOption) error {
		if method == "IssueCartoToken" && n <= 2 {
			return status.Error(codes.Unavailable, "injected")
		}
		return nil
	}
	if _, err := c.CartoToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := cnt.count("IssueCartoToken"); got != 3 {
		t.Errorf("IssueCartoToken attempts = %d, want 3", got)
	}
}

func TestRetriesDuringCartoOutage(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"CARTO_BREAKER_COOLDOWN": "100ms"})
	opts := boston()
	opts.MaxRetries = 10
	c, cnt := newClient(t, b, opts)
	if _, err := c.Login(t.Context()); err != nil { // get the OAuth token first
		t.Fatal(err)
	}

	f := b.Emulator.Faults()
	f.Outage, f.Scope = "unavailable", "tokens" // token creation answers 503
	b.Emulator.SetFaults(f)
	// CARTO is back once it has refused two creations.
	healed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := b.Emulator.WaitFor(ctx, func(s brokertest.EmulatorStats) bool { return s.Faulted >= 2 })
		f.Outage = ""
		b.Emulator.SetFaults(f)
		healed <- err
	}()
	tok, err := c.CartoToken(t.Context())
	if herr := <-healed; herr != nil {
		t.Fatal(herr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if tok.Group != "BOSTON" {
		t.Fatalf("token of %q", tok.Group)
	}
	if got := cnt.count("IssueCartoToken"); got < 3 {
		t.Errorf("IssueCartoToken attempts = %d, want at least 3 (2 refused during the outage)", got)
	}
}

func TestNoRetryOnPermissionDenied(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	opts := boston()
	opts.Group = "NEW YORK" // not Boston's
	c, cnt := newClient(t, b, opts)
	_, err := c.CartoToken(t.Context())
	wantCode(t, err, codes.PermissionDenied)
	if got := cnt.count("IssueCartoToken"); got != 1 {
		t.Errorf("IssueCartoToken attempts = %d, want 1", got)
	}

	_, err = c.ListTokens(t.Context(), "")
	wantCode(t, err, codes.PermissionDenied)
	if got := cnt.count("ListTokens"); got != 1 {
		t.Errorf("ListTokens attempts = %d, want 1", got)
	}
}

func TestDeadlineBoundsRetries(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	opts := boston()
	opts.MaxRetries = 1000
	c, cnt := newClient(t, b, opts)
	if _, err := c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	cnt.inject = func(_ context.Context, method string, _ int, _ []grpc.CallOption) error {
		if method == "IssueCartoToken" {
			return status.Error(codes.Unavailable, "injected")
		}
		return nil
	}
	const timeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	_, err := c.CartoToken(ctx)
	elapsed := time.Since(start)
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("error %v: want UNAVAILABLE or DEADLINE_EXCEEDED", err)
	}
	if elapsed > timeout+400*time.Millisecond {
		t.Errorf("returned after %v, deadline %v", elapsed, timeout)
	}
	if n := cnt.count("IssueCartoToken"); n < 2 || n > 20 {
		t.Errorf("%d attempts in %v", n, timeout)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, cnt := newClient(t, b, boston())
	if _, err := c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	cnt.inject = func(_ context.Context, method string, n int, opts []grpc.CallOption) error {
		if method == "IssueCartoToken" && n == 1 {
			setHeader(opts, metadata.Pairs("retry-after", "1"))
			return status.Error(codes.Unavailable, "injected (retry after 1s)")
		}
		return nil
	}
	start := time.Now()
	if _, err := c.CartoToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("retried after %v, before the 1s retry-after", elapsed)
	}
	if got := cnt.count("IssueCartoToken"); got != 2 {
		t.Errorf("IssueCartoToken attempts = %d, want 2", got)
	}
}

// TestRetryAfterFromBroker: the broker passes CARTO's long Retry-After on as
// a retry-after header; a wait past the caller's deadline is not made.
func TestRetryAfterFromBroker(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, cnt := newClient(t, b, boston())
	if _, err := c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	f := b.Emulator.Faults()
	f.RateLimit, f.RetryAfter, f.Scope = true, 30*time.Second, "tokens"
	b.Emulator.SetFaults(f)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.CartoToken(ctx)
	wantCode(t, err, codes.Unavailable)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("returned after %v: waited for a retry it could not make", elapsed)
	}
	if got := cnt.count("IssueCartoToken"); got != 1 {
		t.Errorf("IssueCartoToken attempts = %d, want 1 (retry-after 30s > deadline)", got)
	}
}
