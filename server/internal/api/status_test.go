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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// TestStatus walks every row of the mapping, one case at least per row (the
// row a case walks is the first its error matches, as in Status), and
// errors no row matches.
func TestStatus(t *testing.T) {
	upstream := func(kind error) error {
		return fmt.Errorf("mint: %w", &carto.Error{Op: "create token", Status: 502, Kind: kind, Detail: "upstream said: internal-detail-xyz"})
	}
	tests := []struct {
		name       string
		err        error
		code       codes.Code
		msg        string // the exact message
		logged     bool   // for the operator: the cause of INTERNAL and UNAVAILABLE answers
		retryAfter string // the retry-after header, in seconds; "" for none
	}{
		{"deadline", fmt.Errorf("mint: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "the request deadline expired", false, ""},
		{"canceled", context.Canceled, codes.Canceled, "the request was canceled", false, ""},
		{"bad argument", refusal.New(broker.ErrInvalidArgument, "carto_token is empty"), codes.InvalidArgument, "carto_token is empty", false, ""},
		{"bad argument, no caller message", fmt.Errorf("%w: internal-detail-xyz", broker.ErrInvalidArgument), codes.InvalidArgument, "invalid argument", false, ""},
		{"bad login", auth.ErrInvalidCredentials, codes.Unauthenticated, "invalid username or password", false, ""},
		{"locked out", fmt.Errorf("login: %w", &auth.LockoutError{RetryAfter: 90 * time.Second}), codes.ResourceExhausted, "too many failed logins; try again in 1m30s", false, "90"},
		{"login flood", &auth.BusyError{Reason: "your address has 2 logins in progress already", RetryAfter: time.Second}, codes.ResourceExhausted, "too many logins at once (your address has 2 logins in progress already); try again in 1s", false, "1"},
		{"revocation list down", fmt.Errorf("%w: redis: i/o timeout", auth.ErrRevocationUnavailable), codes.Unavailable, "the session cannot be checked right now; retry shortly", true, ""},
		{"expired session", refusal.New(auth.ErrUnauthenticated, "session token expired"), codes.Unauthenticated, "session token expired", false, ""},
		{"other group", refusal.New(broker.ErrPermissionDenied, "a session can only obtain its own group's token"), codes.PermissionDenied, "a session can only obtain its own group's token", false, ""},
		{"no group in the IdP token", fmt.Errorf("verify: %w", auth.ErrNoGroup), codes.PermissionDenied, "your identity token carries no group the broker can use", false, ""},
		{"no policy", fmt.Errorf("%w %q", policy.ErrNoPolicy, "X"), codes.PermissionDenied, "no CARTO token policy is configured for your group", false, ""},
		{"unsafe group name", fmt.Errorf("%w: %q", policy.ErrUnsafeValue, "X'; DROP"), codes.PermissionDenied, "your group's name cannot be used in a CARTO grant", false, ""},
		{"query parameter", refusal.New(namedquery.ErrInvalidParameter, "parameter storetype must be one of: Supermarket"), codes.InvalidArgument, "parameter storetype must be one of: Supermarket", false, ""},
		{"query identity", refusal.New(namedquery.ErrNoIdentity, "query q needs the caller's group, which this caller does not have"), codes.PermissionDenied, "query q needs the caller's group, which this caller does not have", false, ""},
		{"no such query", refusal.New(broker.ErrNoSuchQuery, `no query is named "x"`), codes.NotFound, `no query is named "x"`, false, ""},
		{"public rate", &broker.PublicRateError{PerMinute: 60, RetryAfter: 1500 * time.Millisecond}, codes.ResourceExhausted, "more than 60 public queries a minute from this address; retry after 2s", false, "2"},
		{"result too large", refusal.New(broker.ErrResultTooLarge, "the result passes the query's max_rows of 10"), codes.ResourceExhausted, "the result passes the query's max_rows of 10", false, ""},
		{"query token refused twice", fmt.Errorf("%w: %w", broker.ErrTokenRefused, &carto.Error{Op: "sql query", Status: 401, Kind: carto.ErrTokenRefused, Detail: "internal-detail-xyz"}), codes.Unavailable, "CARTO refused the broker's query token twice; retry shortly", true, ""},
		{"query rejected", fmt.Errorf("%w: %w", broker.ErrQueryRejected, &carto.Error{Op: "sql query", Status: 400, Kind: carto.ErrRejected, Detail: "internal-detail-xyz"}), codes.Internal, "CARTO refused the named query; contact the broker's operator", true, ""},
		{"not found", tokencache.ErrNotFound, codes.NotFound, "no token of your group matches", false, ""},
		{"quota", &tokencache.QuotaError{Limit: "the broker's limit of 2 live CARTO tokens"}, codes.ResourceExhausted, "the broker's limit of 2 live CARTO tokens is reached", false, ""},
		{"quota with a retry", &tokencache.QuotaError{Limit: "group BOSTON's limit of 5 CARTO token creations per 1h0m0s", RetryAfter: 90 * time.Second}, codes.ResourceExhausted,
			"group BOSTON's limit of 5 CARTO token creations per 1h0m0s is reached; retry in 1m30s", false, "90"},
		{"store down", fmt.Errorf("read token cache: %w: dial tcp 10.0.0.1:6379: connection refused", store.ErrUnavailable), codes.Unavailable, "the broker's token store is unavailable; retry shortly", true, ""},
		{"CARTO rate limits", &carto.Error{Op: "create token", Status: 429, Kind: carto.ErrRateLimited, RetryAfter: 1500 * time.Millisecond}, codes.Unavailable,
			"CARTO is rate limiting the broker; retry later (retry after 2s)", true, "2"},
		{"CARTO down", upstream(carto.ErrUnavailable), codes.Unavailable, "CARTO cannot be reached right now; retry later", true, ""},
		{"CARTO credentials", upstream(carto.ErrCredentials), codes.Internal, "the broker's CARTO credentials were refused; contact the broker's operator", true, ""},
		{"CARTO rejects", upstream(carto.ErrRejected), codes.Internal, "CARTO refused the token request for your group's policy; contact the broker's operator", true, ""},
		{"CARTO lost a token", upstream(carto.ErrNotFound), codes.Internal, "CARTO lost track of a token; contact the broker's operator", true, ""},
		{"unknown", errors.New("disk on fire at /var/lib/x"), codes.Internal, "internal error", true, ""},
		{"already a status", status.Error(codes.Aborted, "as is"), codes.Aborted, "as is", false, ""},
	}
	walked := make([]bool, len(mapping))
	for _, tt := range tests {
		for i, m := range mapping {
			if errors.Is(tt.err, m.err) {
				walked[i] = true
				break
			}
		}
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			headers := &headerStream{}
			ctx := grpc.NewContextWithServerTransportStream(context.Background(), headers)
			got := status.Convert(Status(ctx, slog.New(slog.NewTextHandler(&logs, nil)), tt.err))
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
			if got := strings.Join(headers.md.Get("retry-after"), ","); got != tt.retryAfter {
				t.Fatalf("retry-after %q, want %q", got, tt.retryAfter)
			}
		})
	}
	for i, m := range mapping {
		if !walked[i] {
			t.Errorf("no case walks the row of %q", m.err)
		}
	}
	if Status(context.Background(), nil, nil) != nil {
		t.Fatal("nil error mapped to a status")
	}
}

// headerStream records the headers Status sets.
type headerStream struct {
	grpc.ServerTransportStream
	md metadata.MD
}

func (s *headerStream) SetHeader(md metadata.MD) error {
	s.md = metadata.Join(s.md, md)
	return nil
}

// A caller's message survives any wrapping on its way up, and only it
// reaches the caller: not the operations that wrapped it, nor the
// sentinel's own text. The errors come from their real producers.
func TestStatusCallerMessageSurvivesWrapping(t *testing.T) {
	ctx := context.Background()
	b := broker.New(broker.Config{})
	router, err := auth.NewRouter(auth.RouterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  func() error
		code codes.Code
		msg  string
	}{
		{"broker: bad argument", func() error {
			_, err := b.RevokeCartoToken(ctx, auth.Principal{}, "")
			return err
		}, codes.InvalidArgument, "carto_token is empty"},
		{"broker: admins only", func() error {
			_, err := b.ListTokens(ctx, auth.Principal{Kind: auth.KindUser, Subject: "u", Group: "G"}, "")
			return err
		}, codes.PermissionDenied, "only admins may list the tokens the broker holds"},
		{"auth: bad token", func() error {
			_, err := router.Authenticate(ctx, "not-a-jwt")
			return err
		}, codes.Unauthenticated, "invalid token"},
		{"api: bound", func() error {
			return checkLengths(&tokenbrokerv1.ListTokensRequest{Group: strings.Repeat("G", MaxGroupLen+1)})
		}, codes.InvalidArgument, "group is longer than 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", tt.err()))
			got := status.Convert(Status(ctx, slog.New(slog.DiscardHandler), err))
			if got.Code() != tt.code || got.Message() != tt.msg {
				t.Fatalf("got %v %q, want %v %q", got.Code(), got.Message(), tt.code, tt.msg)
			}
		})
	}
}
