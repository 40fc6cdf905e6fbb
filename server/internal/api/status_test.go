package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

func TestStatus(t *testing.T) {
	upstream := func(kind error) error {
		return fmt.Errorf("mint: %w", &carto.Error{Op: "create token", Status: 502, Kind: kind, Detail: "upstream said: internal-detail-xyz"})
	}
	tests := []struct {
		name   string
		err    error
		code   codes.Code
		msg    string // the exact message
		logged bool
	}{
		{"bad argument", fmt.Errorf("%w: carto_token is empty", broker.ErrInvalidArgument), codes.InvalidArgument, "carto_token is empty", false},
		{"bad login", auth.ErrInvalidCredentials, codes.Unauthenticated, "invalid username or password", false},
		{"expired session", fmt.Errorf("%w: session token expired", auth.ErrUnauthenticated), codes.Unauthenticated, "session token expired", false},
		{"revocation list down", fmt.Errorf("%w: redis: i/o timeout", auth.ErrRevocationUnavailable), codes.Unavailable, "the session cannot be checked right now; retry shortly", true},
		{"other group", fmt.Errorf("%w: a session can only obtain its own group's token", broker.ErrPermissionDenied), codes.PermissionDenied, "a session can only obtain its own group's token", false},
		{"no policy", fmt.Errorf("%w %q", policy.ErrNoPolicy, "X"), codes.PermissionDenied, "no CARTO token policy is configured for your group", false},
		{"not found", tokencache.ErrNotFound, codes.NotFound, "no token of your group matches", false},
		{"login flood", &auth.BusyError{Reason: "your address has 2 logins in progress already", RetryAfter: time.Second}, codes.ResourceExhausted, "too many logins at once (your address has 2 logins in progress already); try again in 1s", false},
		{"quota", fmt.Errorf("%w: the broker's limit of 2 live CARTO tokens is reached", tokencache.ErrQuotaExceeded), codes.ResourceExhausted, "the broker's limit of 2 live CARTO tokens is reached", false},
		{"store down", fmt.Errorf("read token cache: %w: dial tcp 10.0.0.1:6379: connection refused", store.ErrUnavailable), codes.Unavailable, "the broker's token store is unavailable; retry shortly", true},
		{"CARTO down", upstream(carto.ErrUnavailable), codes.Unavailable, "CARTO cannot be reached right now; retry later", true},
		{"CARTO credentials", upstream(carto.ErrCredentials), codes.Internal, "the broker's CARTO credentials were refused; contact the broker's operator", true},
		{"CARTO rejects", upstream(carto.ErrRejected), codes.Internal, "CARTO refused the token request for your group's policy; contact the broker's operator", true},
		{"deadline", fmt.Errorf("mint: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "the request deadline expired", false},
		{"canceled", context.Canceled, codes.Canceled, "the request was canceled", false},
		{"unknown", errors.New("disk on fire at /var/lib/x"), codes.Internal, "internal error", true},
		{"already a status", status.Error(codes.Aborted, "as is"), codes.Aborted, "as is", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			got := status.Convert(Status(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), tt.err))
			if got.Code() != tt.code || got.Message() != tt.msg {
				t.Fatalf("got %v %q, want %v %q", got.Code(), got.Message(), tt.code, tt.msg)
			}
			if strings.Contains(got.Message(), "internal-detail-xyz") || strings.Contains(got.Message(), "/var/lib") {
				t.Fatal("internal detail reached the caller")
			}
			if logged := logs.Len() > 0; logged != tt.logged {
				t.Fatalf("logged = %v, want %v (%s)", logged, tt.logged, logs.String())
			}
			if tt.logged && tt.code != codes.Unavailable && !strings.Contains(logs.String(), tt.err.Error()[:10]) {
				t.Fatalf("the operator's log lacks the cause: %s", logs.String())
			}
		})
	}
	rl := &carto.Error{Op: "create token", Status: 429, Kind: carto.ErrRateLimited, RetryAfter: 1500 * time.Millisecond}
	if got := status.Convert(Status(context.Background(), slog.New(slog.DiscardHandler), rl)); got.Code() != codes.Unavailable || !strings.HasSuffix(got.Message(), "(retry after 2s)") {
		t.Fatalf("rate limited: %v", got)
	}
	var qe error = &tokencache.QuotaError{Limit: "group BOSTON's limit of 5 CARTO token creations per 1h0m0s", RetryAfter: 90 * time.Second}
	if got := status.Convert(Status(context.Background(), slog.New(slog.DiscardHandler), qe)); got.Code() != codes.ResourceExhausted ||
		got.Message() != "group BOSTON's limit of 5 CARTO token creations per 1h0m0s is reached; retry in 1m30s" {
		t.Fatalf("quota: %v", got)
	}
	if Status(context.Background(), nil, nil) != nil {
		t.Fatal("nil error mapped to a status")
	}
}
