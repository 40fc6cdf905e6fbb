package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// outcome is what a caller is told of one kind of error.
type outcome struct {
	err  error // the kind, matched with errors.Is
	code codes.Code
	// msg is a fixed message: no internal detail and no CARTO answer
	// reaches a caller.
	msg string
	// callerMessage: errors of this kind are refusals written for the
	// caller (a *refusal.Error, or a typed error such as
	// *auth.LockoutError), whose own message is told instead of msg. msg
	// stays the answer to one that carries none.
	callerMessage bool
}

// mapping is the one table from domain errors to what a caller is told. It
// is ordered: the first match wins. A test walks every row.
var mapping = []outcome{
	{err: context.DeadlineExceeded, code: codes.DeadlineExceeded, msg: "the request deadline expired"},
	{err: context.Canceled, code: codes.Canceled, msg: "the request was canceled"},
	{err: broker.ErrInvalidArgument, code: codes.InvalidArgument, msg: "invalid argument", callerMessage: true},
	{err: auth.ErrInvalidCredentials, code: codes.Unauthenticated, msg: "invalid username or password"},
	{err: auth.ErrTooManyAttempts, code: codes.ResourceExhausted, msg: "too many failed logins", callerMessage: true},
	{err: auth.ErrBusy, code: codes.ResourceExhausted, msg: "too many logins at once", callerMessage: true},
	{err: auth.ErrRevocationUnavailable, code: codes.Unavailable, msg: "the session cannot be checked right now; retry shortly"},
	{err: auth.ErrUnauthenticated, code: codes.Unauthenticated, msg: "unauthenticated", callerMessage: true},
	{err: namedquery.ErrInvalidParameter, code: codes.InvalidArgument, msg: "invalid query parameter", callerMessage: true},
	{err: broker.ErrPermissionDenied, code: codes.PermissionDenied, msg: "permission denied", callerMessage: true},
	{err: namedquery.ErrNoIdentity, code: codes.PermissionDenied, msg: "the query needs an identity value the caller lacks", callerMessage: true},
	{err: broker.ErrNoSuchQuery, code: codes.NotFound, msg: "no such query", callerMessage: true},
	{err: broker.ErrPublicRateLimited, code: codes.ResourceExhausted, msg: "too many public queries from this address", callerMessage: true},
	{err: broker.ErrResultTooLarge, code: codes.ResourceExhausted, msg: "the result passes the query's limit", callerMessage: true},
	{err: broker.ErrTokenRefused, code: codes.Unavailable, msg: "CARTO refused the broker's query token twice; retry shortly"},
	{err: broker.ErrQueryRejected, code: codes.Internal, msg: "CARTO refused the named query; contact the broker's operator"},
	{err: auth.ErrNoGroup, code: codes.PermissionDenied, msg: "your identity token carries no group the broker can use"},
	{err: policy.ErrNoPolicy, code: codes.PermissionDenied, msg: "no CARTO token policy is configured for your group"},
	{err: policy.ErrUnsafeValue, code: codes.PermissionDenied, msg: "your group's name cannot be used in a CARTO grant"},
	{err: tokencache.ErrNotFound, code: codes.NotFound, msg: "no token of your group matches"},
	{err: tokencache.ErrQuotaExceeded, code: codes.ResourceExhausted, msg: "token quota exceeded", callerMessage: true},
	{err: store.ErrUnavailable, code: codes.Unavailable, msg: "the broker's token store is unavailable; retry shortly"},
	{err: carto.ErrRateLimited, code: codes.Unavailable, msg: "CARTO is rate limiting the broker; retry later"},
	{err: carto.ErrUnavailable, code: codes.Unavailable, msg: "CARTO cannot be reached right now; retry later"},
	{err: carto.ErrCredentials, code: codes.Internal, msg: "the broker's CARTO credentials were refused; contact the broker's operator"},
	{err: carto.ErrRejected, code: codes.Internal, msg: "CARTO refused the token request for your group's policy; contact the broker's operator"},
	{err: carto.ErrNotFound, code: codes.Internal, msg: "CARTO lost track of a token; contact the broker's operator"},
}

// callerMessager is an error whose message is written for the caller.
type callerMessager interface{ CallerMessage() string }

// Status converts an error of the domain into a gRPC status error, logging
// what the caller is not told. Errors that already are statuses pass through.
func Status(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, m := range mapping {
		if !errors.Is(err, m.err) {
			continue
		}
		msg, fixed := m.msg, true
		var cm callerMessager
		if m.callerMessage && errors.As(err, &cm) {
			msg, fixed = cm.CallerMessage(), false
		}
		if m.code == codes.Internal || m.code == codes.Unavailable {
			log.ErrorContext(ctx, "request failed", "code", m.code.String(), "error", err)
		}
		if ra := retryAfter(err); ra > 0 {
			secs := strconv.Itoa(int(math.Ceil(ra.Seconds())))
			if fixed {
				msg = fmt.Sprintf("%s (retry after %ss)", msg, secs)
			}
			// The REST gateway turns this header into Retry-After.
			_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", secs))
		}
		return status.Error(m.code, msg)
	}
	log.ErrorContext(ctx, "request failed", "code", codes.Internal.String(), "error", err)
	return status.Error(codes.Internal, "internal error")
}

// retryAfter is when err says to try again; 0 when it does not.
func retryAfter(err error) time.Duration {
	var ce *carto.Error
	var le *auth.LockoutError
	var be *auth.BusyError
	var qe *tokencache.QuotaError
	var pe *broker.PublicRateError
	switch {
	case errors.As(err, &pe):
		return pe.RetryAfter
	case errors.As(err, &ce):
		return ce.RetryAfter
	case errors.As(err, &le):
		return le.RetryAfter
	case errors.As(err, &be):
		return be.RetryAfter
	case errors.As(err, &qe):
		return qe.RetryAfter
	}
	return 0
}
