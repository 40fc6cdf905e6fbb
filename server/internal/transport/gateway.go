package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	codepb "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
)

// MaxBodyBytes bounds a REST request body, checked before any JSON decoding.
const MaxBodyBytes = 64 << 10

// GatewayConfig configures the REST front.
type GatewayConfig struct {
	Service tokenbrokerv1.TokenBrokerServer
	Chain   Chain
	// CORSOrigins are the browser origins allowed to call the API; "*" allows
	// any. Sessions travel in the Authorization header, never in cookies, so
	// a cross-origin page cannot use a session it does not hold.
	CORSOrigins []string
	// Routes are more GET endpoints beside the API (the JWKS, /metrics, the
	// probes, the OpenAPI document), by path. They run outside the gRPC
	// chain: they are public.
	Routes map[string]http.Handler
	// Mounts are handlers of every method under a path prefix (the CARTO
	// gateway), served with the prefix stripped, outside the gRPC chain
	// but behind the same CORS and body limit.
	Mounts map[string]http.Handler
	// Wrap, when set, wraps the whole handler (tracing).
	Wrap func(http.Handler) http.Handler
}

// NewGateway returns the REST/JSON handler: the /v1 routes and the reference
// backend's /login and /carto-token, with CORS and a body size limit.
func NewGateway(ctx context.Context, cfg GatewayConfig) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newMemoJSON(&runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		})),
		runtime.WithErrorHandler(writeError),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			if strings.EqualFold(key, "X-Request-Id") {
				return "x-request-id", true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
		runtime.WithForwardResponseOption(geoJSONContentType),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if h, ok := plainHeaders[key]; ok {
				return h, true
			}
			return runtime.MetadataHeaderPrefix + key, true
		}),
	)
	svc := intercepted{next: cfg.Service, chain: cfg.Chain.Unary}
	if err := tokenbrokerv1.RegisterTokenBrokerHandlerServer(ctx, mux, svc); err != nil {
		return nil, fmt.Errorf("register gateway: %w", err)
	}
	for path, h := range cfg.Routes {
		err := mux.HandlePath(http.MethodGet, path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) { h.ServeHTTP(w, r) })
		if err != nil {
			return nil, fmt.Errorf("register %s: %w", path, err)
		}
	}
	var inner http.Handler = queryParamsInQueryString(mux)
	if len(cfg.Mounts) > 0 {
		top := http.NewServeMux()
		top.Handle("/", inner)
		for prefix, h := range cfg.Mounts {
			top.Handle(prefix+"/", http.StripPrefix(prefix, h))
		}
		inner = top
	}
	var h http.Handler = withCORS(cfg.CORSOrigins, limitBody(withPeer(cfg.Chain.trusted, inner)))
	if cfg.Wrap != nil {
		h = cfg.Wrap(h)
	}
	return h, nil
}

// plainHeaders are the gRPC response headers the gateway sends under their
// HTTP names, not as Grpc-Metadata-*.
var plainHeaders = map[string]string{"x-request-id": "X-Request-Id", "retry-after": "Retry-After"}

// WriteJSON writes a JSON document (the probes' answers).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// intercepted runs every gateway call through the interceptor chain, as the
// gRPC server does: grpc-gateway's in-process handlers call the service
// directly, which would otherwise skip authentication. It needs a method per
// method of the service: TestGatewayWrapperCoversTheService checks it has
// each, under its own name.
type intercepted struct {
	tokenbrokerv1.UnimplementedTokenBrokerServer
	next  tokenbrokerv1.TokenBrokerServer
	chain grpc.UnaryServerInterceptor
}

func (s intercepted) Login(ctx context.Context, r *tokenbrokerv1.LoginRequest) (*tokenbrokerv1.LoginResponse, error) {
	return invoke(ctx, s, tokenbrokerv1.TokenBroker_Login_FullMethodName, r, s.next.Login)
}

func (s intercepted) IssueCartoToken(ctx context.Context, r *tokenbrokerv1.IssueCartoTokenRequest) (*tokenbrokerv1.IssueCartoTokenResponse, error) {
	return invoke(ctx, s, tokenbrokerv1.TokenBroker_IssueCartoToken_FullMethodName, r, s.next.IssueCartoToken)
}

func (s intercepted) RevokeToken(ctx context.Context, r *tokenbrokerv1.RevokeTokenRequest) (*tokenbrokerv1.RevokeTokenResponse, error) {
	return invoke(ctx, s, tokenbrokerv1.TokenBroker_RevokeToken_FullMethodName, r, s.next.RevokeToken)
}

func (s intercepted) ListTokens(ctx context.Context, r *tokenbrokerv1.ListTokensRequest) (*tokenbrokerv1.ListTokensResponse, error) {
	return invoke(ctx, s, tokenbrokerv1.TokenBroker_ListTokens_FullMethodName, r, s.next.ListTokens)
}

func (s intercepted) ListQueries(ctx context.Context, r *tokenbrokerv1.ListQueriesRequest) (*tokenbrokerv1.ListQueriesResponse, error) {
	return invoke(ctx, s, tokenbrokerv1.TokenBroker_ListQueries_FullMethodName, r, s.next.ListQueries)
}

func (s intercepted) RunQuery(ctx context.Context, r *tokenbrokerv1.RunQueryRequest) (*tokenbrokerv1.RunQueryResponse, error) {
	return invoke(ctx, s, tokenbrokerv1.TokenBroker_RunQuery_FullMethodName, r, s.next.RunQuery)
}

func (s intercepted) RunQueryGeoJSON(ctx context.Context, r *tokenbrokerv1.RunQueryGeoJSONRequest) (*tokenbrokerv1.RunQueryGeoJSONResponse, error) {
	return invoke(ctx, s, tokenbrokerv1.TokenBroker_RunQueryGeoJSON_FullMethodName, r, s.next.RunQueryGeoJSON)
}

func invoke[Req, Resp any](ctx context.Context, s intercepted, method string, req Req, h func(context.Context, Req) (Resp, error)) (Resp, error) {
	info := &grpc.UnaryServerInfo{Server: s.next, FullMethod: method}
	out, err := s.chain(ctx, req, info, func(ctx context.Context, r any) (any, error) { return h(ctx, r.(Req)) })
	if err != nil {
		var zero Resp
		return zero, err
	}
	return out.(Resp), nil
}

// withPeer records the client's address and TLS state as the gRPC peer, so
// the chain sees who a REST call came from as it does for gRPC: the
// connection's address, or the client a trusted proxy names.
func withPeer(tp TrustedProxies, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if addr, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
			p := &peer.Peer{Addr: addr}
			if c := tp.fromProxy(r.RemoteAddr, r.Header.Values("X-Forwarded-For")); c != nil {
				p.Addr = c
			}
			if r.TLS != nil {
				p.AuthInfo = credentials.TLSInfo{State: *r.TLS}
			}
			r = r.WithContext(peer.NewContext(r.Context(), p))
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody refuses a body over MaxBodyBytes: at once with 413 when its
// declared length says so, and by cutting it off when it is streamed (then
// writeError answers 413).
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			writeJSONError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, bodyTooLarge)
			return
		}
		body := &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, MaxBodyBytes)}
		r.Body = body
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), limitedBodyKey{}, body)))
	})
}

var bodyTooLarge = fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes)

// limitedBody remembers that reading the body hit the limit. grpc-gateway
// hands the read error to writeError as an INVALID_ARGUMENT status, which
// keeps only its text; this keeps its type.
type limitedBody struct {
	io.ReadCloser
	overLimit bool
}

type limitedBodyKey struct{}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.overLimit = true
	}
	return n, err
}

// overLimit reports whether r's body went over MaxBodyBytes.
func overLimit(r *http.Request) bool {
	b, ok := r.Context().Value(limitedBodyKey{}).(*limitedBody)
	return ok && b.overLimit
}

// withCORS answers preflights and marks responses for allowed origins.
func withCORS(origins []string, next http.Handler) http.Handler {
	anyOrigin := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && (anyOrigin || slices.Contains(origins, origin))
		if allowed {
			h := w.Header()
			if anyOrigin {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Add("Vary", "Origin")
			}
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if allowed {
				h := w.Header()
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// errorBody is the JSON of every REST error: the gRPC code and its name, a
// message for people, and the same message as `error`, which is what the
// reference backend's clients read.
type errorBody struct {
	Code    codes.Code `json:"code"`
	Status  string     `json:"status"`
	Message string     `json:"message"`
	Error   string     `json:"error"`
}

func writeJSONError(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if httpStatus == http.StatusUnauthorized {
		// RFC 6750 §3, rather than grpc-gateway's default of the message.
		w.Header().Set("WWW-Authenticate", `Bearer realm="tokenbroker"`)
	}
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(errorBody{Code: code, Status: codepb.Code(code).String(), Message: msg, Error: msg})
}

// writeError is the gateway's error handler.
func writeError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	s := status.Convert(err)
	httpStatus := runtime.HTTPStatusFromCode(s.Code())
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		for key, h := range plainHeaders {
			if v := md.HeaderMD.Get(key); len(v) > 0 {
				w.Header().Set(h, v[0])
			}
		}
	}
	msg := s.Message()
	if s.Code() == codes.InvalidArgument && overLimit(r) {
		httpStatus, msg = http.StatusRequestEntityTooLarge, bodyTooLarge
	}
	writeJSONError(w, httpStatus, s.Code(), msg)
}

// routingError answers unknown routes (404) and wrong methods (405).
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		writeJSONError(w, httpStatus, codes.Unimplemented, "method "+r.Method+" is not allowed here")
	case http.StatusNotFound:
		writeJSONError(w, httpStatus, codes.NotFound, "no route "+r.URL.Path)
	default:
		writeJSONError(w, httpStatus, codes.Unknown, http.StatusText(httpStatus)+" ("+strconv.Itoa(httpStatus)+")")
	}
}
