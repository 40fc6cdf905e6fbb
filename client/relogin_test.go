package client_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/client"
)

func TestReloginWhenSessionExpired(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, cnt := newClient(t, b, boston())
	first, err := c.Login(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cnt.inject = func(_ context.Context, method string, n int, _ []grpc.CallOption) error {
		if method == "IssueCartoToken" && n == 1 {
			return status.Error(codes.Unauthenticated, "session token expired")
		}
		return nil
	}
	tok, err := c.CartoToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Group != "BOSTON" {
		t.Fatalf("token of %q", tok.Group)
	}
	if got := cnt.count("Login"); got != 2 {
		t.Errorf("Login called %d times, want 2", got)
	}
	if got := cnt.count("IssueCartoToken"); got != 2 {
		t.Errorf("IssueCartoToken attempts = %d, want 2", got)
	}
	// The new session is the one used from now on.
	second, err := c.Login(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if second.Token == first.Token {
		t.Error("the session was not replaced")
	}
}

func TestReloginOnlyOnce(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, cnt := newClient(t, b, boston())
	cnt.inject = func(_ context.Context, method string, _ int, _ []grpc.CallOption) error {
		if method == "IssueCartoToken" {
			return status.Error(codes.Unauthenticated, "session token expired")
		}
		return nil
	}
	_, err := c.CartoToken(t.Context())
	wantCode(t, err, codes.Unauthenticated)
	if got := cnt.count("Login"); got != 2 {
		t.Errorf("Login called %d times, want 2", got)
	}
}

func TestNoReloginWithoutUsernameOrExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	// A session that is not expired but refused for another reason.
	c, cnt := newClient(t, b, boston())
	cnt.inject = func(_ context.Context, method string, _ int, _ []grpc.CallOption) error {
		if method == "IssueCartoToken" {
			return status.Error(codes.Unauthenticated, "session revoked")
		}
		return nil
	}
	_, err := c.CartoToken(t.Context())
	wantCode(t, err, codes.Unauthenticated)
	if got := cnt.count("Login"); got != 1 {
		t.Errorf("Login called %d times, want 1", got)
	}

	// A given token cannot be renewed by the client.
	sess, err := c.Login(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	withToken, cnt2 := newClient(t, b, client.Config{Token: sess.Token})
	cnt2.inject = func(_ context.Context, method string, _ int, _ []grpc.CallOption) error {
		if method == "IssueCartoToken" {
			return status.Error(codes.Unauthenticated, "session token expired")
		}
		return nil
	}
	_, err = withToken.CartoToken(t.Context())
	wantCode(t, err, codes.Unauthenticated)
	if got := cnt2.count("Login") + cnt2.count("IssueCartoToken"); got != 1 {
		t.Errorf("%d calls, want 1", got)
	}
}
