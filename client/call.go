package client

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// bearerCreds attaches a bearer token to one call. It implements
// credentials.PerRPCCredentials.
type bearerCreds struct{ token string }

// GetRequestMetadata returns the `authorization: Bearer <token>` metadata.
func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity reports false, so that a broker on loopback (or
// behind a sidecar) can be called in plaintext. Across a network, set
// Config.TLS: over plaintext the bearer is readable on the wire.
func (bearerCreds) RequireTransportSecurity() bool { return false }

// String keeps the token out of anything that prints the credentials.
func (bearerCreds) String() string { return "Bearer [redacted]" }

// GoString is String.
func (b bearerCreds) GoString() string { return b.String() }

// withBearer is the call option that sends tok; none when tok is empty (a
// service identified by its client certificate).
func withBearer(tok string) []grpc.CallOption {
	if tok == "" {
		return nil
	}
	return []grpc.CallOption{grpc.PerRPCCredentials(bearerCreds{token: tok})}
}

// rpcFunc makes one attempt of a call with opts.
type rpcFunc func(ctx context.Context, opts ...grpc.CallOption) error

// call runs rpc with the client's bearer (logging in first if the client has
// a username and no session), retrying UNAVAILABLE. When relogin is set and
// the call fails UNAUTHENTICATED because a session from Login expired, it
// logs in again once and retries.
func (c *Client) call(ctx context.Context, relogin bool, rpc rpcFunc) error {
	sess, err := c.bearer(ctx)
	if err != nil {
		return err
	}
	err = c.retry(ctx, rpc, withBearer(sess.Token)...)
	if !relogin || c.username == "" || sess.Token == "" || !sessionExpired(err) {
		return err
	}
	c.dropSession(sess.Token)
	if sess, err = c.bearer(ctx); err != nil {
		return err
	}
	return c.retry(ctx, rpc, withBearer(sess.Token)...)
}

// sessionExpired reports whether err says the bearer has expired.
func sessionExpired(err error) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unauthenticated && strings.Contains(strings.ToLower(s.Message()), "expired")
}

// retry makes attempts of rpc while they fail UNAVAILABLE, at most
// 1+c.maxRetries, backing off between them (see Config.MaxRetries). It
// returns the last attempt's error as it is, or the status of ctx's error if
// ctx ends while waiting.
func (c *Client) retry(ctx context.Context, rpc rpcFunc, extra ...grpc.CallOption) error {
	for attempt := 0; ; attempt++ {
		var header, trailer metadata.MD
		opts := append(extra[:len(extra):len(extra)], grpc.Header(&header), grpc.Trailer(&trailer))
		err := rpc(ctx, opts...)
		if status.Code(err) != codes.Unavailable || attempt >= c.maxRetries {
			return err
		}
		wait := backoff(attempt)
		if ra := retryAfter(header, trailer); ra > wait {
			wait = ra
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			return err // the retry could not be made in time
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// backoff is the wait before retry number attempt+1: uniform in [0, d)
// where d = 100 ms * 2^attempt, at most 2 s ("full jitter").
func backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt < 5 { // 100 ms << 5 > 2 s
		d = min(backoffBase<<attempt, backoffMax)
	}
	return rand.N(d)
}

// retryAfter reads a `retry-after` response header (seconds), from the
// headers or, for a trailers-only response, the trailers.
func retryAfter(mds ...metadata.MD) time.Duration {
	for _, md := range mds {
		for _, v := range md.Get("retry-after") {
			if secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && secs > 0 {
				return time.Duration(min(secs, 3600) * float64(time.Second))
			}
		}
	}
	return 0
}

// flight is one request shared by concurrent callers.
type flight[T any] struct {
	done        chan struct{} // closed when val and err are set
	ctx         context.Context
	cancel      context.CancelFunc
	waiters     int  // callers still waiting; guarded by the caller's mutex
	interrupted bool // fn ended after ctx was done
	val         T
	err         error
}

// share returns what fn returns, running at most one fn at a time for all
// the callers that pass the same slot (guarded by mu). When cached (called
// with mu held; may be nil) reports a value, it is returned without a call.
//
// fn runs with a context that has the values and the deadline of the caller
// that started it, but not its cancellation: it is canceled when every
// waiting caller has given up. A caller whose context ends returns at once.
// A caller still in time when the flight it waited for was cut short by
// another caller's deadline starts a new one.
func share[T any](ctx context.Context, mu *sync.Mutex, slot **flight[T], cached func() (T, bool), fn func(context.Context) (T, error)) (T, error) {
	var zero T
	for {
		mu.Lock()
		if cached != nil {
			if v, ok := cached(); ok {
				mu.Unlock()
				return v, nil
			}
		}
		if err := ctx.Err(); err != nil {
			mu.Unlock()
			return zero, status.FromContextError(err).Err()
		}
		f := *slot
		if f == nil || f.ctx.Err() != nil {
			f = startFlight(ctx, mu, slot, fn)
		}
		f.waiters++
		mu.Unlock()

		select {
		case <-f.done:
			if f.interrupted && f.err != nil && ctx.Err() == nil {
				continue
			}
			return f.val, f.err
		case <-ctx.Done():
			mu.Lock()
			if f.waiters--; f.waiters == 0 {
				f.cancel()
			}
			mu.Unlock()
			return zero, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// ended reports whether ctx is done or past its deadline. A call cut short
// by its deadline can return (gRPC's DEADLINE_EXCEEDED, say) a moment before
// the context's own timer has fired, when ctx.Err is still nil.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// startFlight starts fn in a new flight stored in *slot. mu is held.
func startFlight[T any](ctx context.Context, mu *sync.Mutex, slot **flight[T], fn func(context.Context) (T, error)) *flight[T] {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if deadline, ok := ctx.Deadline(); ok {
		var cancelDeadline context.CancelFunc
		fctx, cancelDeadline = context.WithDeadline(fctx, deadline)
		parent := cancel
		cancel = func() { cancelDeadline(); parent() }
	}
	f := &flight[T]{done: make(chan struct{}), ctx: fctx, cancel: cancel}
	*slot = f
	go func() {
		v, err := fn(fctx)
		mu.Lock()
		f.val, f.err, f.interrupted = v, err, ended(fctx)
		if *slot == f {
			*slot = nil
		}
		mu.Unlock()
		cancel()
		close(f.done)
	}()
	return f
}
