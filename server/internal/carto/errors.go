package carto

import (
	"errors"
	"fmt"
	"time"
)

// Kinds of failure, for errors.Is. Callers map them to their own answers and
// never show a CARTO response body to their own callers.
var (
	// ErrUnavailable: CARTO could not be reached, timed out, or failed (5xx or
	// a response that does not follow its wire format). Retrying later may work.
	ErrUnavailable = errors.New("CARTO is unavailable")
	// ErrRateLimited: CARTO answered 429. Error.RetryAfter says when to retry.
	ErrRateLimited = errors.New("CARTO is rate limiting requests")
	// ErrCredentials: CARTO refused the broker's own OAuth client. Only an
	// operator can fix this.
	ErrCredentials = errors.New("CARTO rejected the broker's OAuth client credentials")
	// ErrRejected: CARTO refused the request itself (4xx), for example a grant
	// it does not accept or a full token quota. Retrying the same request fails.
	ErrRejected = errors.New("CARTO rejected the request")
	// ErrNotFound: CARTO does not know the token.
	ErrNotFound = errors.New("token not found at CARTO")
	// ErrTokenRefused: CARTO refused the API access token a query ran with:
	// Error.Status 401 when it does not know it (deleted, expired), 403 when
	// the token does not allow the API, the origin or the query. A token
	// minted afresh for the same queries may be accepted; if it is refused
	// too, the configuration is wrong.
	ErrTokenRefused = errors.New("CARTO refused the API access token")
	// ErrResultTooLarge: a query's result is beyond the limits of the
	// request. A *LimitError says which.
	ErrResultTooLarge = errors.New("the query result is too large")
)

// LimitError is a query result refused for a limit: Limit is "max_rows"
// (rows or features) or "max_bytes" (of CARTO's answer), Value the limit.
// It wraps ErrResultTooLarge.
type LimitError struct {
	Limit string
	Value int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("carto: %v: more than %s %d", ErrResultTooLarge, e.Limit, e.Value)
}

func (e *LimitError) Unwrap() error { return ErrResultTooLarge }

// Error describes one failed call to CARTO.
type Error struct {
	Op         string        // what was attempted, e.g. "create token"
	Status     int           // HTTP status, 0 when no response arrived
	Kind       error         // one of the Err* kinds above
	RetryAfter time.Duration // from a 429's Retry-After header, when given
	// Detail is CARTO's own error text or the transport error, for the
	// operator's log. It never holds credentials or tokens.
	Detail string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("carto: %s: %v", e.Op, e.Kind)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Kind }
