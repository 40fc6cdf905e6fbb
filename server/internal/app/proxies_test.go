package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// Behind a trusted proxy (TRUSTED_PROXIES holds the test's own address, as
// a load balancer's would be), the per-address login limit counts the
// client X-Forwarded-For names: one client locked out leaves the others
// alone, over REST and gRPC. (Without TRUSTED_PROXIES the same headers are
// ignored: TestAttackForwardedHeadersDodgeAddressLockout.)
func TestTrustedProxyNamesTheClient(t *testing.T) {
	const limit = 2
	// Failures are counted in fixed windows, here a day: if the day turns
	// during the test, a count starts afresh; it runs again once.
	for try := 1; ; try++ {
		start := time.Now()
		err := trustedProxyLockout(t, startBroker(t, brokertest.Env(map[string]string{
			"TRUSTED_PROXIES": "127.0.0.1, ::1", "LOGIN_MAX_ADDR_FAILURES": strconv.Itoa(limit), "LOGIN_LOCKOUT_WINDOW": "24h",
		})), limit)
		if err == nil {
			return
		}
		if try == 1 && windowTurned(start, 24*time.Hour) {
			continue
		}
		t.Fatal(err)
	}
}

func trustedProxyLockout(t *testing.T, b *broker, limit int) error {
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	login := func(body string, hdr http.Header) int {
		resp := b.do(http.MethodPost, "/login", "", body, hdr)
		decode(t, resp) // reads and closes the body
		return resp.StatusCode
	}
	guess := func(i int) string { return `{"username":"guess` + strconv.Itoa(i) + `@acme.com","password":"wrong"}` }
	for i := range limit {
		if code := login(guess(i), from("203.0.113.1")); code != http.StatusUnauthorized {
			return fmt.Errorf("guess %d from 203.0.113.1: %d, want 401", i+1, code)
		}
	}
	if code := login(guess(9), from("203.0.113.1")); code != http.StatusTooManyRequests {
		return fmt.Errorf("past the limit, from 203.0.113.1: %d, want 429", code)
	}
	// Another client behind the same proxy is not locked out.
	if code := login(`{"username":"user.boston@acme.com","password":"boston"}`, from("203.0.113.2")); code != http.StatusOK {
		return fmt.Errorf("another client, from 203.0.113.2: %d, want 200", code)
	}
	// The same over gRPC, with the metadata a proxy such as Envoy sets.
	locked := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-for", "203.0.113.1")
	if _, err := b.grpc.Login(locked, &tokenbrokerv1.LoginRequest{Username: "user.boston@acme.com", Password: "boston"}); status.Code(err) != codes.ResourceExhausted {
		return fmt.Errorf("gRPC from 203.0.113.1: %v, want RESOURCE_EXHAUSTED", err)
	}
	other := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-for", "203.0.113.3")
	if _, err := b.grpc.Login(other, &tokenbrokerv1.LoginRequest{Username: "user.boston@acme.com", Password: "boston"}); err != nil {
		return fmt.Errorf("gRPC from 203.0.113.3: %v, want a session", err)
	}
	return nil
}
