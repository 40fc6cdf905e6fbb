// Package telemetry sets up tracing (OpenTelemetry, exported over OTLP when
// the standard OTEL_* variables ask for it, off otherwise) and ties logs to
// requests: every log line written with a request's context carries its
// request id and, when traced, its trace and span ids.
package telemetry

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Env looks up an environment variable.
type Env func(string) (string, bool)

// Tracing is the broker's tracer provider and how to stop it.
type Tracing struct {
	Provider trace.TracerProvider
	// Propagator reads and writes trace context (W3C traceparent) on calls.
	Propagator propagation.TextMapPropagator
	Shutdown   func(context.Context) error
	Enabled    bool
}

// Setup returns tracing as the OTEL_* variables say: an OTLP/gRPC exporter
// when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set (and OTEL_TRACES_EXPORTER is not "none"); no tracing otherwise. The
// exporter reads the rest of its settings (headers, TLS, timeouts) from the
// standard variables itself.
func Setup(ctx context.Context, env Env) (Tracing, error) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	off := Tracing{Provider: noop.NewTracerProvider(), Propagator: prop, Shutdown: func(context.Context) error { return nil }}
	if v, _ := env("OTEL_TRACES_EXPORTER"); v == "none" {
		return off, nil
	}
	_, all := env("OTEL_EXPORTER_OTLP_ENDPOINT")
	_, traces := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if !all && !traces {
		return off, nil
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return Tracing{}, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	name, _ := env("OTEL_SERVICE_NAME")
	if name == "" {
		name = "tokenbroker"
	}
	// Schemaless, so it merges with the SDK's default resource whatever the
	// semantic-convention version of each.
	res, err := sdkresource.Merge(sdkresource.Default(), sdkresource.NewSchemaless(semconv.ServiceName(name)))
	if err != nil {
		return Tracing{}, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	// Libraries that use the globals (none of ours do) see the same.
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	return Tracing{Provider: tp, Propagator: prop, Shutdown: tp.Shutdown, Enabled: true}, nil
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying a request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id of ctx, if any.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewRequestID returns a random request id. It correlates log lines and
// guards nothing, so a fast generator will do.
func NewRequestID() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// CleanRequestID keeps a caller-supplied request id only if it is short and
// plain (letters, digits, '-', '_', '.'), so it can be logged as is.
func CleanRequestID(id string) string {
	if len(id) == 0 || len(id) > 64 {
		return ""
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return ""
		}
	}
	return id
}

// LogHandler adds the request id and trace ids of a record's context.
type LogHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return LogHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h LogHandler) WithGroup(name string) slog.Handler { return LogHandler{h.Handler.WithGroup(name)} }
