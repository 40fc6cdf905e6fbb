package transport

import (
	"context"
	"crypto/x509"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/telemetry"
)

// ChainConfig configures the interceptor chain.
type ChainConfig struct {
	Authenticator auth.Authenticator
	Logger        *slog.Logger
	// ErrorStatus turns an error of the authenticator or of Services into
	// the status the caller is told (api.Status, through the service). Nil:
	// statuses pass through and anything else is INTERNAL, without detail.
	ErrorStatus func(ctx context.Context, err error) error
	// Services identifies internal services by their verified TLS client
	// certificates, for calls that carry no bearer token. Nil: none.
	Services *auth.Services
	// Metrics, when set, counts every call by method and code (before
	// authentication, so refused calls are counted too).
	Metrics *grpcprom.ServerMetrics
	// TrustedProxies are the peers whose x-forwarded-for names the client
	// (TRUSTED_PROXIES); empty: none, the connection's address is the
	// client's.
	TrustedProxies TrustedProxies
	// Draining ends when the server starts to shut down. Streams (health
	// Watch, reflection) are ended then: they never finish by themselves and
	// would hold a graceful stop until its timeout. Nil means never.
	Draining context.Context
}

// Chain is the interceptor chain of both transports.
type Chain struct {
	Unary  grpc.UnaryServerInterceptor
	Stream grpc.StreamServerInterceptor
	// trusted are the chain's trusted proxies, which the REST front uses too.
	trusted TrustedProxies
}

// NewChain builds the chain: recovery outermost, so a panic anywhere becomes
// INTERNAL without details; then, for streams, the end on draining; the
// request id; metrics, when configured; the request log; then
// authentication, of every method the access table does not make public.
func NewChain(cfg ChainConfig) Chain {
	log := cfg.Logger
	onPanic := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in request", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	// What skips the request log and what skips authentication. (Matched on
	// info.FullMethod directly: go-grpc-middleware's selector formats the
	// method name anew on every call.)
	notLogged := infrastructure
	public := func(m string) bool { return AccessOf(m) == Public }
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	// Streams (health Watch, reflection) keep the library's logger.
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	toStatus := cfg.ErrorStatus
	if toStatus == nil {
		toStatus = internalUnlessStatus
	}
	authFn := authenticate(cfg.Authenticator, cfg.Services, toStatus)
	unary := []grpc.UnaryServerInterceptor{recovery.UnaryServerInterceptor(onPanic), requestIDUnary, cfg.TrustedProxies.unaryClientAddr}
	stream := []grpc.StreamServerInterceptor{recovery.StreamServerInterceptor(onPanic), endOnDrain(cfg.Draining), requestIDStream}
	if cfg.Metrics != nil {
		unary = append(unary, cfg.Metrics.UnaryServerInterceptor())
		stream = append(stream, cfg.Metrics.StreamServerInterceptor())
	}
	unary = append(unary,
		unaryUnless(notLogged, logCall(log)),
		unaryUnless(public, optionalAuth(cfg.Services, grpcauth.UnaryServerInterceptor(authFn))))
	stream = append(stream,
		streamUnless(notLogged, logging.StreamServerInterceptor(logger, logOpts...)),
		streamUnless(public, grpcauth.StreamServerInterceptor(authFn)))
	return Chain{Unary: chainUnary(unary...), Stream: chainStream(stream...), trusted: cfg.TrustedProxies}
}

// optionalAuth runs auth, except for an Optional method called without
// credentials, which runs without a caller.
func optionalAuth(services *auth.Services, auth grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if AccessOf(info.FullMethod) == Optional && !hasCredentials(ctx, services) {
			return h(ctx, req)
		}
		return auth(ctx, req, info, h)
	}
}

// hasCredentials reports whether the call carries an authorization value or
// a verified client certificate the broker identifies services by.
func hasCredentials(ctx context.Context, services *auth.Services) bool {
	return len(metadata.ValueFromIncomingContext(ctx, "authorization")) > 0 || (services != nil && clientCert(ctx) != nil)
}

// unaryUnless runs ic except for the methods skip names.
func unaryUnless(skip func(fullMethod string) bool, ic grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if skip(info.FullMethod) {
			return h(ctx, req)
		}
		return ic(ctx, req, info, h)
	}
}

// streamUnless runs ic except for the methods skip names.
func streamUnless(skip func(fullMethod string) bool, ic grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if skip(info.FullMethod) {
			return h(srv, ss)
		}
		return ic(srv, ss, info, h)
	}
}

// logCall logs the end of a unary call: method, code and duration, never a
// payload (they hold passwords and tokens). Successful calls are logged at
// Debug: at tens of thousands a second a line each would cost more than the
// call, and the audit log records every login, issuance and revocation
// anyway. Nothing is built unless the line will be written.
func logCall(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		code := status.Code(err)
		level := slog.Level(logging.DefaultServerCodeToLevel(code))
		if code == codes.OK {
			level = slog.LevelDebug
		}
		if log.Enabled(ctx, level) {
			attrs := []slog.Attr{
				slog.String("grpc.method", info.FullMethod),
				slog.String("grpc.code", code.String()),
				slog.Float64("grpc.time_ms", float64(time.Since(start).Microseconds())/1000),
			}
			if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
				attrs = append(attrs, slog.String("peer.address", p.Addr.String()))
			}
			if err != nil {
				attrs = append(attrs, slog.String("grpc.error", err.Error()))
			}
			log.LogAttrs(ctx, level, "finished call", attrs...)
		}
		return resp, err
	}
}

// requestID gives every call an id: the caller's x-request-id when it is
// plain, else a new one. It is in the context (every log line of the call
// carries it) and sent back as the x-request-id header.
func requestID(ctx context.Context) context.Context {
	var id string
	if vals := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(vals) == 1 {
		id = telemetry.CleanRequestID(vals[0])
	}
	if id == "" {
		id = telemetry.NewRequestID()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
	return telemetry.WithRequestID(ctx, id)
}

func requestIDUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(requestID(ctx), req)
}

func requestIDStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, &streamWithContext{ServerStream: ss, ctx: requestID(ss.Context())})
}

// endOnDrain cancels a stream's context when draining starts.
func endOnDrain(draining context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if draining == nil {
			return h(srv, ss)
		}
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		stop := context.AfterFunc(draining, cancel)
		defer stop()
		return h(srv, &streamWithContext{ServerStream: ss, ctx: ctx})
	}
}

type streamWithContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *streamWithContext) Context() context.Context { return s.ctx }

// authenticate puts the caller's Principal in the context: from the bearer
// token (`authorization: Bearer <token>`) when there is one, else from a
// verified client certificate registered as a service.
func authenticate(a auth.Authenticator, services *auth.Services, toStatus func(context.Context, error) error) grpcauth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		if len(metadata.ValueFromIncomingContext(ctx, "authorization")) == 0 && services != nil {
			if cert := clientCert(ctx); cert != nil {
				p, err := services.Identify(cert)
				if err != nil {
					return nil, toStatus(ctx, err)
				}
				return auth.WithPrincipal(ctx, p), nil
			}
		}
		tok, err := bearer(ctx)
		if err != nil {
			return nil, err
		}
		p, err := a.Authenticate(ctx, tok)
		if err != nil {
			return nil, toStatus(ctx, err)
		}
		return auth.WithPrincipal(ctx, p), nil
	}
}

// internalUnlessStatus is the error mapping of a chain configured without
// one: it passes statuses and tells nothing of any other error.
func internalUnlessStatus(_ context.Context, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, "internal error")
}

// clientCert is the caller's TLS client certificate, if the handshake
// verified it against the configured CA.
func clientCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

// bearer extracts the one bearer token of the request.
func bearer(ctx context.Context) (string, error) {
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	switch {
	case len(vals) == 0:
		return "", status.Error(codes.Unauthenticated, "authentication required: send `authorization: Bearer <session token>`")
	case len(vals) > 1:
		return "", status.Error(codes.Unauthenticated, "more than one authorization value")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
		return "", status.Error(codes.Unauthenticated, "authorization must be `Bearer <session token>`")
	}
	return tok, nil
}

// chainUnary composes interceptors into one, the first outermost, as
// grpc.ChainUnaryInterceptor does; the gateway needs the composed value.
func chainUnary(ics ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		next := h
		for i := len(ics) - 1; i >= 0; i-- {
			ic, inner := ics[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

func chainStream(ics ...grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		next := h
		for i := len(ics) - 1; i >= 0; i-- {
			ic, inner := ics[i], next
			next = func(srv any, ss grpc.ServerStream) error { return ic(srv, ss, info, inner) }
		}
		return next(srv, ss)
	}
}
