// Package app wires the broker from its configuration: listeners, the CARTO
// client (or, in demo mode, the in-process CARTO emulator), stores, the
// broker, and the gRPC and REST servers; and runs them until the context
// ends, then drains them.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenbroker/tokenbroker/server/internal/api"
	"github.com/tokenbroker/tokenbroker/server/internal/audit"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
	"github.com/tokenbroker/tokenbroker/server/internal/metrics"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/telemetry"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
	"github.com/tokenbroker/tokenbroker/server/internal/transport"
)

// ShutdownTimeout bounds how long in-flight requests may take to finish
// after a shutdown signal before their connections are closed.
const ShutdownTimeout = 10 * time.Second

// App is a wired broker, listening but not yet serving.
type App struct {
	cfg config.Config
	log *slog.Logger

	grpcLn, httpLn net.Listener
	grpcSrv        *grpc.Server
	health         *health.Server
	httpSrv        *http.Server

	// draining ends when shutdown starts, ending long-lived streams.
	draining   context.Context
	startDrain context.CancelFunc

	store      store.Store
	cache      *tokencache.Cache
	reconciler *broker.Reconciler
	rotating   *auth.RotatingKeys // asymmetric session keys; nil with HS256
	auditFile  io.Closer
	carto      *carto.Client
	metrics    *metrics.Metrics
	tracing    telemetry.Tracing

	// bg lives until Run has drained the servers: background work (the
	// store's feed, reconciliation, key rotation, IdP key refresh).
	bg     context.Context
	stopBg context.CancelFunc
	// serving is closed once Run serves (health says SERVING).
	serving chan struct{}

	// demo mode only
	sim    *cartosim.Sim
	simLn  net.Listener
	simSrv *http.Server
}

// Option adjusts an App.
type Option func(*App)

// WithTracing traces requests and CARTO calls with t (see telemetry.Setup).
func WithTracing(t telemetry.Tracing) Option { return func(a *App) { a.tracing = t } }

// New wires the broker and opens its listeners. Nothing is served until Run.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (_ *App, err error) {
	// a is not the named result: every failure returns nil, and the clean-up
	// below must still see what was opened.
	a := &App{cfg: cfg, log: log, serving: make(chan struct{})}
	for _, o := range opts {
		o(a)
	}
	if a.tracing.Provider == nil {
		a.tracing, _ = telemetry.Setup(ctx, func(string) (string, bool) { return "", false })
	}
	a.draining, a.startDrain = context.WithCancel(context.Background())
	a.bg, a.stopBg = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			a.stopBg()
			a.closeListeners()
			if a.store != nil {
				a.store.Close()
			}
			if a.auditFile != nil {
				a.auditFile.Close()
			}
		}
	}()
	if a.grpcLn, err = listen("gRPC", "HOST", "GRPC_PORT", cfg.GRPCAddr()); err != nil {
		return nil, err
	}
	if a.httpLn, err = listen("REST", "HOST", "PORT", cfg.HTTPAddr()); err != nil {
		return nil, err
	}
	if cfg.Demo {
		if err := a.startEmulator(); err != nil {
			return nil, err
		}
	}

	if a.store, err = openStore(ctx, cfg); err != nil {
		return nil, err
	}
	users, err := auth.NewUsers(cfg.Users)
	if err != nil {
		return nil, err
	}
	policies, err := policy.NewSet(cfg.Groups, cfg.DefaultPolicy)
	if err != nil {
		return nil, err
	}
	a.metrics = metrics.New(metrics.Gauges{
		LiveTokens: func(ctx context.Context) (int, error) {
			es, err := a.store.Entries(ctx)
			return len(es), err
		},
		MaxLiveTokens:   cfg.MaxLiveTokens,
		MaxMintsPerHour: cfg.MaxMintsPerHour,
		MintsThisHour: func(ctx context.Context) (int64, error) {
			return a.store.Count(ctx, tokencache.CreationCounter, time.Now(), time.Hour, 0)
		},
	})
	httpClient := &http.Client{Timeout: 30 * time.Second}
	if a.tracing.Enabled {
		httpClient.Transport = otelhttp.NewTransport(http.DefaultTransport,
			otelhttp.WithTracerProvider(a.tracing.Provider), otelhttp.WithPropagators(a.tracing.Propagator))
	}
	client, err := carto.New(carto.Config{
		HTTPClient:      httpClient,
		Observe:         a.metrics.CartoCall,
		BaseURL:         a.cfg.Carto.BaseURL,
		AuthURL:         a.cfg.Carto.AuthURL,
		ClientID:        a.cfg.Carto.ClientID,
		ClientSecret:    a.cfg.Carto.ClientSecret,
		Logger:          log,
		CallTimeout:     a.cfg.Carto.CallTimeout,
		BreakerCooldown: a.cfg.Carto.BreakerCooldown,
		// One OAuth token for the whole deployment, kept across restarts.
		Shared: store.SharedSecret{Store: a.store, Name: "carto-oauth"},
		// CARTO's Retry-After holds every replica back, per endpoint.
		Pauses: store.SharedPauses{Store: a.store, Name: "carto-pause"},
	})
	if err != nil {
		return nil, err
	}
	a.carto = client
	upstream := broker.Upstream{Carto: client, Policies: policies, NamePrefix: broker.TokenNamePrefix(cfg.Deployment)}
	a.cache = tokencache.New(tokencache.Config{
		Store:         a.store,
		Upstream:      upstream,
		Logger:        log,
		MaxLiveTokens: cfg.MaxLiveTokens,
		MaxMints:      cfg.MaxMintsPerHour,
		MintWindow:    time.Hour,
		Observer:      a.metrics,
		// Fairness (see README, Quota): a group's share, a share kept for
		// refreshes, and a budget of members' revocations.
		MaxGroupMints:         cfg.MaxMintsPerGroupPerHour,
		RefreshReservePercent: cfg.RefreshReservePercent,
		MaxGroupRevocations:   cfg.MaxRevocationsPerGroupPerHour,
	})
	if err := a.cache.Load(ctx); err != nil {
		return nil, err
	}
	keys, err := a.sessionKeys(ctx)
	if err != nil {
		return nil, err
	}
	sessions, err := auth.NewSessions(auth.SessionConfig{
		Keys:     keys,
		Issuer:   cfg.SessionIssuer,
		Audience: cfg.SessionAudience,
		TTL:      cfg.SessionTTL,
		Leeway:   cfg.SessionLeeway,
	})
	if err != nil {
		return nil, err
	}
	verifiers := []auth.Verifier{sessions}
	for _, idp := range cfg.IdentityProviders {
		idp.Logger = log
		v, err := auth.NewIdP(a.bg, idp)
		if err != nil {
			return nil, idpError(cfg.ConfigFile, idp, err)
		}
		verifiers = append(verifiers, v)
	}
	authn, err := auth.NewRouter(auth.RevocationsFunc(a.cache.SessionRevoked), verifiers...)
	if err != nil {
		return nil, err
	}
	var services *auth.Services
	if len(cfg.Services) > 0 {
		if services, err = auth.NewServices(cfg.Services); err != nil {
			return nil, err
		}
	}
	auditLog, err := a.openAudit()
	if err != nil {
		return nil, err
	}
	a.reconciler = broker.NewReconciler(broker.ReconcilerConfig{
		Cache:      a.cache,
		Store:      a.store,
		Policies:   policies,
		Carto:      client,
		Upstream:   upstream,
		NamePrefix: broker.TokenNamePrefix(cfg.Deployment),
		Interval:   cfg.ReconcileInterval,
		Logger:     log,
	})
	b := broker.New(broker.Config{
		Users:      users,
		Sessions:   sessions,
		Policies:   policies,
		Cache:      a.cache,
		APIBaseURL: client.BaseURL(),
		Logger:     log,
		Guard: auth.NewGuard(auth.GuardConfig{
			Counter:         a.store,
			MaxUserFailures: cfg.LoginMaxUserFailures,
			MaxAddrFailures: cfg.LoginMaxAddrFailures,
			Window:          cfg.LoginWindow,
		}),
		Limiter: auth.NewLoginLimiter(auth.LoginLimiterConfig{
			MaxQueue:     cfg.LoginMaxQueue,
			QueueTimeout: cfg.LoginQueueTimeout,
			MaxPerAddr:   cfg.LoginMaxPerAddr,
		}),
		AdminsRevokeCartoTokens: cfg.AdminsRevokeCartoTokens,
	})
	svc := api.NewService(b, log, auditLog, a.metrics)
	chain := transport.NewChain(transport.ChainConfig{Authenticator: authn, Services: services, Logger: log, Public: api.PublicMethods, Metrics: a.metrics.GRPC, Draining: a.draining})
	var grpcOpts []grpc.ServerOption
	if a.tracing.Enabled {
		grpcOpts = append(grpcOpts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(a.tracing.Provider), otelgrpc.WithPropagators(a.tracing.Propagator))))
	}
	if cfg.TLS.Enabled() {
		tlsCfg, err := serverTLS(cfg.TLS)
		if err != nil {
			return nil, err
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsCfg)))
		a.httpLn = tls.NewListener(a.httpLn, tlsCfg)
	}
	a.grpcSrv, a.health = transport.NewGRPCServer(svc, chain, grpcLimits(cfg.GRPC), grpcOpts...)
	gwCfg := transport.GatewayConfig{Service: svc, Chain: chain, CORSOrigins: cfg.CORSOrigins, Routes: a.routes()}
	if a.tracing.Enabled {
		gwCfg.Wrap = func(h http.Handler) http.Handler {
			return otelhttp.NewHandler(h, "rest", otelhttp.WithTracerProvider(a.tracing.Provider), otelhttp.WithPropagators(a.tracing.Propagator),
				otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
		}
	}
	gw, err := transport.NewGateway(ctx, gwCfg)
	if err != nil {
		return nil, err
	}
	a.httpSrv = newHTTPServer(gw, log)
	return a, nil
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

// sessionKeys returns what sessions are signed with: JWT_SECRET (HS256), or
// asymmetric keys rotated in the store and shared by the replicas.
func (a *App) sessionKeys(ctx context.Context) (auth.KeySource, error) {
	if a.cfg.SessionAlg == "" || a.cfg.SessionAlg == "HS256" {
		return auth.HMACKey(a.cfg.JWTSecret), nil
	}
	rk, err := auth.NewRotatingKeys(ctx, auth.RotatingKeysConfig{
		Algorithm: a.cfg.SessionAlg,
		Store:     store.SharedSecret{Store: a.store, Name: "session-keys"},
		Rotation:  a.cfg.SessionKeyRotation,
		// A replaced key verifies every session it signed until it expires.
		Retain: a.cfg.SessionTTL + a.cfg.SessionLeeway + time.Minute,
		Logger: a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("session keys: %w", err)
	}
	a.rotating = rk
	return rk, nil
}

// openAudit opens the audit log's destination (AUDIT_LOG).
func (a *App) openAudit() (*audit.Logger, error) {
	switch a.cfg.AuditLog {
	case "":
		return audit.New(a.log.Handler()), nil
	case "off":
		return audit.Discard(), nil
	case "stdout":
		return audit.New(slog.NewJSONHandler(os.Stdout, nil)), nil
	}
	f, err := os.OpenFile(a.cfg.AuditLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("AUDIT_LOG: %w: set it to a file the broker may write in an existing directory, or to stdout or off", err)
	}
	// Events are written in batches (every 100 ms, and at shutdown).
	w := telemetry.NewBufferedWriter(f, 100*time.Millisecond)
	a.auditFile = closers{w, f}
	return audit.New(slog.NewJSONHandler(w, nil)), nil
}

// closers closes several things in order.
type closers []io.Closer

func (c closers) Close() error {
	var errs []error
	for _, x := range c {
		errs = append(errs, x.Close())
	}
	return errors.Join(errs...)
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

// startEmulator serves a CARTO emulator on loopback and points the broker
// at it with a fresh OAuth client.
func (a *App) startEmulator() error {
	ln, err := listen("CARTO emulator", "", "DEMO_CARTO_PORT", net.JoinHostPort("127.0.0.1", strconv.Itoa(a.cfg.EmulatorPort)))
	if err != nil {
		return err
	}
	a.simLn = ln
	base := "http://" + ln.Addr().String()
	id, secret := cartosim.NewClient()
	sim, err := cartosim.New(cartosim.Options{ClientID: id, ClientSecret: secret, PublicURL: base})
	if err != nil {
		return err
	}
	a.sim = sim
	a.simSrv = newHTTPServer(sim, a.log)
	a.cfg.Carto.BaseURL, a.cfg.Carto.AuthURL, a.cfg.Carto.ClientID, a.cfg.Carto.ClientSecret = base, base+"/oauth/token", id, secret
	return nil
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

// listen opens what's listener on addr, made of the settings hostVar
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

// idpError names where a failing identity provider is configured, and what
// to check when it cannot be reached: the broker does not start without the
// keys of every identity provider it trusts.
func idpError(file string, idp auth.IdPConfig, err error) error {
	var unreachable *url.Error
	if errors.As(err, &unreachable) {
		name := idp.Name
		if name == "" {
			name = idp.Issuer
		}
		return fmt.Errorf("identity_providers in TOKENBROKER_CONFIG (%s): identity provider %q cannot be reached: %v: check its issuer (and jwks_url), and that this host can reach them", file, name, unreachable)
	}
	return fmt.Errorf("identity_providers in TOKENBROKER_CONFIG (%s): %w", file, err)
}

func (a *App) closeListeners() {
	for _, ln := range []net.Listener{a.grpcLn, a.httpLn, a.simLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// GRPCAddr, HTTPAddr and EmulatorURL are where the app listens.
func (a *App) GRPCAddr() string { return a.grpcLn.Addr().String() }
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// EmulatorURL is the demo emulator's base URL, "" outside demo mode.
func (a *App) EmulatorURL() string {
	if a.simLn == nil {
		return ""
	}
	return "http://" + a.simLn.Addr().String()
}

// Emulator is the demo mode's CARTO emulator, nil outside demo mode.
func (a *App) Emulator() *cartosim.Sim { return a.sim }

// Config is the configuration the app runs with (in demo mode, pointing at
// the emulator).
func (a *App) Config() config.Config { return a.cfg }

// Warm gets the deployment's CARTO OAuth token (another replica's, or a new
// one) if this replica has none, so that the first token request after a
// start waits for one CARTO call, not two. Run's background refresher
// fetches it at start too; Warm is for a caller that must wait for it.
func (a *App) Warm(ctx context.Context) error { return a.carto.Warm(ctx) }

// Serving is closed once Run serves: its servers accept calls and its health
// says SERVING. A caller starting Run in a goroutine waits on it (and on
// Run returning early with an error).
func (a *App) Serving() <-chan struct{} { return a.serving }

// Run serves until ctx ends, then stops taking requests, lets in-flight ones
// finish (up to ShutdownTimeout), stops the background work and closes the
// store, and returns.
func (a *App) Run(ctx context.Context) error {
	// Background work (the shared store's feed, reconciliation, the CARTO
	// OAuth token's refresh, key rotation) outlives the drain: in-flight
	// requests still need fresh views to finish.
	var bgWG sync.WaitGroup
	bgWG.Go(func() {
		if err := a.cache.Run(a.bg); err != nil {
			a.log.Error("token store feed stopped", "error", err)
		}
	})
	bgWG.Go(func() { a.reconciler.Run(a.bg) })
	// It fetches the token at once if there is none, so that the first
	// token request after a start waits for one CARTO call, not two.
	bgWG.Go(func() { a.carto.KeepOAuthFresh(a.bg) })
	if a.rotating != nil {
		bgWG.Go(func() { a.rotating.Run(a.bg) })
	}
	defer func() {
		a.stopBg()
		bgWG.Wait()
		if err := a.store.Close(); err != nil {
			a.log.Warn("closing the token store", "error", err)
		}
		if a.auditFile != nil {
			a.auditFile.Close()
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.tracing.Shutdown(sctx); err != nil {
			a.log.Warn("flushing traces", "error", err)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	serve := func(name string, f func() error) {
		g.Go(func() error {
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("%s server: %w", name, err)
			}
			return nil
		})
	}
	serve("gRPC", func() error { return a.grpcSrv.Serve(a.grpcLn) })
	serve("REST", func() error { return a.httpSrv.Serve(a.httpLn) })
	if a.simSrv != nil {
		serve("CARTO emulator", func() error { return a.simSrv.Serve(a.simLn) })
	}
	// A replica is ready once its views of a shared store are in sync;
	// until then its requests fail closed.
	syncCtx, cancelSync := context.WithTimeout(gctx, 10*time.Second)
	if err := a.cache.WaitSynced(syncCtx); err != nil && gctx.Err() == nil {
		a.log.Warn("not in sync with the shared token store yet; requests fail closed until it is", "error", err)
	}
	cancelSync()
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	close(a.serving)
	a.log.Info("tokenbroker serving", "grpc", a.GRPCAddr(), "rest", a.HTTPAddr(), "config", a.cfg)

	g.Go(func() error {
		<-gctx.Done()
		a.shutdown()
		return nil
	})
	return g.Wait()
}

func (a *App) shutdown() {
	a.log.Info("shutting down: draining in-flight requests")
	// Probes see NOT_SERVING first, so load balancers stop sending; then
	// watch streams end, since they would otherwise hold the drain open.
	a.health.Shutdown()
	a.startDrain()
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() { a.grpcSrv.GracefulStop(); close(stopped) }()
	if err := a.httpSrv.Shutdown(ctx); err != nil {
		a.log.Warn("REST server did not drain in time", "error", err)
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		a.log.Warn("gRPC server did not drain in time; closing connections")
		a.grpcSrv.Stop()
		<-stopped
	}
	if a.simSrv != nil {
		_ = a.simSrv.Shutdown(ctx)
	}
}
