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
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// mapping is the one table from domain errors to what a caller is told. It is
// ordered: the first match wins. A message of "" passes the error's own text
// through, for errors written for the caller (bad arguments); every other
// message is fixed, so no internal detail and no CARTO response reaches a
// caller.
var mapping = []struct {
	err  error
	code codes.Code
	msg  string
}{
	{context.DeadlineExceeded, codes.DeadlineExceeded, "the request deadline expired"},
	{context.Canceled, codes.Canceled, "the request was canceled"},
	{broker.ErrInvalidArgument, codes.InvalidArgument, ""},
	{auth.ErrInvalidCredentials, codes.Unauthenticated, "invalid username or password"},
	{auth.ErrTooManyAttempts, codes.ResourceExhausted, ""},
	{auth.ErrBusy, codes.ResourceExhausted, ""},
	{auth.ErrRevocationUnavailable, codes.Unavailable, "the session cannot be checked right now; retry shortly"},
	{auth.ErrUnauthenticated, codes.Unauthenticated, ""},
	{broker.ErrPermissionDenied, codes.PermissionDenied, ""},
	{auth.ErrNoGroup, codes.PermissionDenied, "your identity token carries no group the broker can use"},
	{policy.ErrNoPolicy, codes.PermissionDenied, "no CARTO token policy is configured for your group"},
	{policy.ErrUnsafeValue, codes.PermissionDenied, "your group's name cannot be used in a CARTO grant"},
	{tokencache.ErrNotFound, codes.NotFound, "no token of your group matches"},
	{tokencache.ErrQuotaExceeded, codes.ResourceExhausted, ""},
	{store.ErrUnavailable, codes.Unavailable, "the broker's token store is unavailable; retry shortly"},
	{carto.ErrRateLimited, codes.Unavailable, "CARTO is rate limiting the broker; retry later"},
	{carto.ErrUnavailable, codes.Unavailable, "CARTO cannot be reached right now; retry later"},
	{carto.ErrCredentials, codes.Internal, "the broker's CARTO credentials were refused; contact the broker's operator"},
	{carto.ErrRejected, codes.Internal, "CARTO refused the token request for your group's policy; contact the broker's operator"},
	{carto.ErrNotFound, codes.Internal, "CARTO lost track of a token; contact the broker's operator"},
}

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
		msg := m.msg
		if msg == "" {
			msg = callerMessage(err, m.err)
		}
		if m.code == codes.Internal || m.code == codes.Unavailable {
			log.ErrorContext(ctx, "request failed", "code", m.code.String(), "error", err)
		}
		if ra := retryAfter(err); ra > 0 {
			secs := strconv.Itoa(int(math.Ceil(ra.Seconds())))
			if m.msg != "" {
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

// callerMessage is the text of an error written for the caller: the error's
// message without the sentinel's own prefix ("invalid argument: x" -> "x").
func callerMessage(err, sentinel error) string {
	msg := err.Error()
	prefix := sentinel.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}

func retryAfter(err error) time.Duration {
	var ce *carto.Error
	var le *auth.LockoutError
	var be *auth.BusyError
	var qe *tokencache.QuotaError
	switch {
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
