package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"

	"github.com/tokenbroker/tokenbroker/server/internal/api"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
	"github.com/tokenbroker/tokenbroker/server/internal/transport"
)

// openListeners opens the gRPC and the REST listener, first of all, so that
// a port in use is reported before anything else is opened.
func openListeners(cfg config.Config) (grpcLn, httpLn net.Listener, err error) {
	if grpcLn, err = listen("gRPC", "HOST", "GRPC_PORT", cfg.GRPCAddr()); err != nil {
		return nil, nil, err
	}
	if httpLn, err = listen("REST", "HOST", "PORT", cfg.HTTPAddr()); err != nil {
		grpcLn.Close()
		return nil, nil, err
	}
	return grpcLn, httpLn, nil
}

// listen opens the listener of what on addr, made of the settings hostVar
// ("" where the host is fixed) and portVar; a failure says which to change.
func listen(what, hostVar, portVar, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s: %s is already in use (by another broker, or another program): stop it, or set %s to a free port", what, addr, portVar)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("%s: no permission to listen on %s (ports below 1024 need privileges): set %s to a port above 1023", what, addr, portVar)
	case hostVar != "" && errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, fmt.Errorf("%s: cannot listen on %s: %s %s is not an address of this machine: set it to one of its addresses, or leave it unset to listen on all", what, addr, hostVar, host)
	case hostVar != "" && errors.As(err, &dnsErr):
		return nil, fmt.Errorf("%s: cannot listen on %s: %s %q does not resolve (%v): set %s to an address or name of this machine", what, addr, hostVar, host, dnsErr, hostVar)
	case hostVar != "":
		return nil, fmt.Errorf("%s: cannot listen on %s: %w (check %s and %s)", what, addr, err, hostVar, portVar)
	}
	return nil, fmt.Errorf("%s: cannot listen on %s: %w (check %s)", what, addr, err, portVar)
}

// servers are the gRPC server and the REST gateway, on their listeners.
type servers struct {
	grpc   *grpc.Server
	health *health.Server
	http   *http.Server
	httpLn net.Listener // the REST listener, with TLS when configured
}

// newServers makes the gRPC server and the REST gateway of svc, both behind
// one interceptor chain that authenticates with id.
func (a *App) newServers(ctx context.Context, svc *api.Service, id identity) (servers, error) {
	cfg, log := a.cfg, a.log
	chain := transport.NewChain(transport.ChainConfig{Authenticator: id.authn, Services: id.services, Logger: log, ErrorStatus: svc.Status, Metrics: a.metrics.GRPC, Draining: a.draining,
		TrustedProxies: cfg.TrustedProxies})
	s := servers{httpLn: a.httpLn}
	grpcOpts := a.grpcOpts
	if a.tracing.Enabled {
		grpcOpts = append(grpcOpts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(a.tracing.Provider), otelgrpc.WithPropagators(a.tracing.Propagator))))
	}
	if cfg.TLS.Enabled() {
		tlsCfg, err := serverTLS(cfg.TLS)
		if err != nil {
			return servers{}, err
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsCfg)))
		s.httpLn = tls.NewListener(a.httpLn, tlsCfg)
	}
	s.grpc, s.health = transport.NewGRPCServer(transport.GRPCConfig{Service: svc, Chain: chain, Limits: grpcLimits(cfg.GRPC), Options: grpcOpts})
	gwCfg := transport.GatewayConfig{Service: svc, Chain: chain, CORSOrigins: cfg.CORSOrigins, Routes: a.routes()}
	cartoGW, err := a.newGateway()
	if err != nil {
		return servers{}, err
	}
	if cartoGW != nil {
		gwCfg.Mounts = map[string]http.Handler{cfg.Gateway.Path(cfg.Demo): cartoGW}
	}
	if a.tracing.Enabled {
		gwCfg.Wrap = func(h http.Handler) http.Handler {
			return otelhttp.NewHandler(h, "rest", otelhttp.WithTracerProvider(a.tracing.Provider), otelhttp.WithPropagators(a.tracing.Propagator),
				otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
		}
	}
	gw, err := transport.NewGateway(ctx, gwCfg)
	if err != nil {
		return servers{}, err
	}
	s.http = newHTTPServer(gw, log)
	return s, nil
}

// grpcLimits is the gRPC server's part of the configuration.
func grpcLimits(c config.GRPCLimits) transport.Limits {
	return transport.Limits{
		MaxConcurrentStreams:  uint32(c.MaxConcurrentStreams),
		MaxHealthWatches:      c.MaxHealthWatches,
		MaxReflectionStreams:  c.MaxReflectionStreams,
		MaxConnectionIdle:     c.MaxConnectionIdle,
		MaxConnectionAge:      c.MaxConnectionAge,
		MaxConnectionAgeGrace: c.MaxConnectionAgeGrace,
		KeepaliveMinTime:      c.KeepaliveMinTime,
	}
}

// serverTLS is the TLS of both listeners. With a client CA, a client
// certificate is verified when one is presented (browsers present none);
// a verified one identifies an internal service.
func serverTLS(c config.TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE / TLS_KEY_FILE: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS_CLIENT_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS_CLIENT_CA_FILE %s holds no PEM certificate", c.ClientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    transport.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
