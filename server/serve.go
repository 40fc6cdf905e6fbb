package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/tokenbroker/tokenbroker/internal/version"
	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
	"github.com/tokenbroker/tokenbroker/server/internal/telemetry"
)

func serve(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, err := config.Load(args, config.Env(env))
	var verr *config.ValidationError
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, err = fmt.Fprint(stdout, usageText, "\nflags:\n", config.FlagUsage(),
			"\nenvironment variables (also read from the --env-file; a flag overrides its variable):\n", config.EnvUsage())
		return err
	case errors.Is(err, config.ErrVersion):
		_, err = fmt.Fprintln(stdout, version.Get().String("tokenbroker"))
		return err
	case errors.As(err, &verr):
		return err
	case err != nil:
		return usageError{fmt.Errorf("%w\n\nflags:\n%s", err, config.FlagUsage())}
	}
	// Log lines are written in batches (every 100 ms, and at exit).
	logOut := telemetry.NewBufferedWriter(stderr, 100*time.Millisecond)
	defer logOut.Close()
	log := newLogger(cfg, logOut)
	routeLibraryLogs(log)
	tracing, err := telemetry.Setup(ctx, telemetry.Env(env))
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log, app.WithTracing(tracing))
	if err != nil {
		return err
	}
	if cfg.Demo {
		printHowTo(stdout, a)
	}
	return a.Run(ctx)
}

// routeLibraryLogs sends what go-redis and OpenTelemetry log by themselves
// (a failed dial, a failed trace export) to the broker's log, in its format:
// left alone they write raw lines on stderr, which break LOG_FORMAT=json.
// Their loggers are process-global, which the broker's own code never is, so
// they are set here, at the composition root, once per serve.
func routeLibraryLogs(log *slog.Logger) {
	redis.SetLogger(telemetry.RedisLogger{Log: log})
	otel.SetLogger(telemetry.OTelLogger(log.Handler()))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(telemetry.OTelErrors(log)))
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	// Durations are written as text ("1h0m0s") in both formats.
	opts := &slog.HandlerOptions{Level: cfg.LogLevel, ReplaceAttr: telemetry.DurationsAsText}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Every line logged for a request carries its request id and trace ids.
	return slog.New(telemetry.LogHandler{Handler: h})
}

// printHowTo tells a demo user what to try, with commands that work as
// printed against the addresses actually bound.
func printHowTo(w io.Writer, a *app.App) {
	rest := "localhost:" + port(a.HTTPAddr())
	grpcAddr := "localhost:" + port(a.GRPCAddr())
	sim := a.EmulatorURL()
	bostonSQL := "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'BOSTON'"
	nySQL := "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'NEW YORK'"
	guideSQL := "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @groupcity"
	// Reads "token" from REST's one-line JSON and grpcurl's indented JSON.
	extract := `sed -nE 's/.*"token": *"([^"]+)".*/\1/p'`
	fmt.Fprintf(w, `
TokenBroker demo: an in-process CARTO emulator, the reference guide's users and
a random session secret. Nothing leaves this machine.

  Demo page       http://%[1]s/   (open it in a browser on this machine)
  REST            http://%[1]s   (POST /login, /carto-token, /v1/login, /v1/carto-token, /v1/revoke)
  gRPC            %[2]s           (grpcurl -plaintext %[2]s list)
  CARTO emulator  %[3]s
  CARTO gateway   %[8]s   (for CARTO's guide frontend, its .env:
                  VITE_CARTO_API_BASE_URL=%[8]s
                  VITE_COMPANY_API_BASE_URL=http://%[1]s)

  users  user.boston@acme.com / boston   group BOSTON    (Maps and SQL APIs)
         user.ny@acme.com / ny           group NEW YORK  (Maps API only, as in the reference)
         admin@acme.com / admin          group BOSTON, admin (lists the tokens held: GET /v1/tokens)

Try it with curl (a shell, as printed):

  SESSION=$(curl -s -X POST http://%[1]s/login -d '{"username":"user.boston@acme.com","password":"boston"}' | %[4]s)
  curl -s -X POST http://%[1]s/carto-token -H "Authorization: Bearer $SESSION"
  CARTO=$(curl -s -X POST http://%[1]s/carto-token -H "Authorization: Bearer $SESSION" | %[4]s)

  # Boston's stores, with exactly the granted query:
  curl -s -G %[3]s/v3/sql/carto_dw/query -H "Authorization: Bearer $CARTO" --data-urlencode %[5]s
  curl -s -G %[3]s/v3/maps/carto_dw/query -H "Authorization: Bearer $CARTO" --data-urlencode %[5]s
  # New York's stores with Boston's token: 403
  curl -s -G %[3]s/v3/sql/carto_dw/query -H "Authorization: Bearer $CARTO" --data-urlencode %[6]s

  # The guide frontend's query, through the broker's CARTO gateway: with the
  # caller's own city it is sent to CARTO as the grant; with another, 403.
  curl -s -G %[8]s/v3/maps/carto_dw/query -H "Authorization: Bearer $CARTO" --data-urlencode %[9]s --data-urlencode 'queryParameters={"groupcity":"BOSTON"}'
  curl -s -G %[8]s/v3/maps/carto_dw/query -H "Authorization: Bearer $CARTO" --data-urlencode %[9]s --data-urlencode 'queryParameters={"groupcity":"NEW YORK"}'

  # revoke the CARTO token (the next /carto-token mints a new one), then log out
  curl -s -X POST http://%[1]s/v1/revoke -H "Authorization: Bearer $SESSION" -d "{\"carto_token\":\"$CARTO\"}"
  curl -s -X POST http://%[1]s/v1/revoke -H "Authorization: Bearer $SESSION" -d '{"session":true}'
  curl -s -X POST http://%[1]s/carto-token -H "Authorization: Bearer $SESSION"     # now 401

And over gRPC (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4):

  grpcurl -plaintext %[2]s list
  NY=$(grpcurl -plaintext -d '{"username":"user.ny@acme.com","password":"ny"}' %[2]s tokenbroker.v1.TokenBroker/Login | %[4]s)
  grpcurl -plaintext -H "authorization: Bearer $NY" %[2]s tokenbroker.v1.TokenBroker/IssueCartoToken

  emulator counters (its control endpoints need this secret, printed only here):
  curl -s -H "Authorization: Bearer %[7]s" %[3]s/_sim/stats

`, rest, grpcAddr, sim, extract, shellQuote("q="+bostonSQL), shellQuote("q="+nySQL), a.Emulator().ControlToken(),
		a.GatewayURL(), shellQuote("q="+guideSQL))
}

func port(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
