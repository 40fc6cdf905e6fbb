package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/go-logr/logr"
)

// DurationsAsText is a slog.HandlerOptions.ReplaceAttr that writes a
// time.Duration as its String ("1h0m0s") in every handler; the JSON handler
// would otherwise write it as a number of nanoseconds.
func DurationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// RedisLogger forwards go-redis's internal messages (redis.SetLogger) to a
// slog logger, so that they come out in the broker's log format rather than
// as raw lines on stderr. go-redis speaks only when something went wrong, at
// the level the message implies: a failed dial or Sentinel lookup at debug,
// since the same error reaches the caller, which reports it (a start-up
// failure, the store's own warnings, /readyz); a recovered panic at error;
// anything else, which nobody else reports, at warn.
type RedisLogger struct{ Log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	level := slog.LevelWarn
	switch {
	case strings.Contains(msg, "panic"):
		level = slog.LevelError
	case strings.Contains(msg, "failed to dial"), strings.HasPrefix(msg, "sentinel: "):
		level = slog.LevelDebug
	}
	l.Log.Log(ctx, level, "redis client: "+msg)
}

// OTelLogger returns a logr.Logger for otel.SetLogger that writes to h, with
// OpenTelemetry's verbosity mapped onto slog's levels: its warnings (V(1))
// at warn, its info (V(4)) at debug, its debug (V(8)) below debug.
func OTelLogger(h slog.Handler) logr.Logger {
	return logr.FromSlogHandler(otelLevels{h})
}

// OTelErrors returns an otel.ErrorHandler (a failed export, for one) that
// logs each error at error level.
func OTelErrors(log *slog.Logger) func(error) {
	return func(err error) {
		log.Error("opentelemetry", "err", err)
	}
}

// otelLevels maps the levels logr.FromSlogHandler gives (V(n) is level -n).
type otelLevels struct{ h slog.Handler }

func otelLevel(l slog.Level) slog.Level {
	switch {
	case l >= slog.LevelInfo:
		return l // V(0) and errors
	case l > slog.LevelDebug:
		return slog.LevelWarn // V(1) to V(3): otel's warnings
	case l == slog.LevelDebug:
		return slog.LevelDebug // V(4): otel's info
	default:
		return slog.LevelDebug - 4 // V(8): otel's debug
	}
}

func (o otelLevels) Enabled(ctx context.Context, l slog.Level) bool {
	return o.h.Enabled(ctx, otelLevel(l))
}

func (o otelLevels) Handle(ctx context.Context, r slog.Record) error {
	r.Level = otelLevel(r.Level)
	return o.h.Handle(ctx, r)
}

func (o otelLevels) WithAttrs(attrs []slog.Attr) slog.Handler {
	return otelLevels{o.h.WithAttrs(attrs)}
}

func (o otelLevels) WithGroup(name string) slog.Handler { return otelLevels{o.h.WithGroup(name)} }
