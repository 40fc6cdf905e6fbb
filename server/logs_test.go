package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/tokenbroker/tokenbroker/server/internal/config"
	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
	"github.com/tokenbroker/tokenbroker/server/internal/store/redisstore"
)

// jsonLines decodes every line of a JSON log, failing on one that is not.
func jsonLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON (%v): %s", err, l)
		}
		lines = append(lines, m)
	}
	return lines
}

// With LOG_FORMAT=json, what go-redis and OpenTelemetry report by themselves
// is written by the broker's logger as JSON lines, not as raw lines on stderr.
// Not parallel: the libraries' loggers are process-global.
func TestLibraryLogsGoThroughSlog(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out logtest.Buffer
	routeLibraryLogs(newLogger(config.Config{LogFormat: "json", LogLevel: slog.LevelDebug}, &out))

	// A Redis client made as the store makes it, at a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := redisstore.NewClient("redis://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
	// go-redis's global logger is ours: its dial failure lands here (and so
	// not on stderr, where its default logger writes).
	if err := out.Await(ctx, "failed to dial"); err != nil {
		t.Fatal(err)
	}
	otel.Handle(errors.New("traces export: connection refused"))
	if err := out.Await(ctx, "traces export"); err != nil {
		t.Fatal(err)
	}

	var redisLine, otelLine map[string]any
	for _, l := range jsonLines(t, out.String()) {
		msg, _ := l["msg"].(string)
		switch {
		case strings.Contains(msg, "connection pool: failed to dial") && strings.Contains(msg, addr):
			redisLine = l
		case msg == "opentelemetry":
			otelLine = l
		}
	}
	if redisLine == nil || redisLine["level"] != "DEBUG" || strings.HasPrefix(redisLine["msg"].(string), "redis: redis:") {
		t.Errorf("go-redis's dial failure: %v, want a DEBUG line (the caller reports the error); log:\n%s", redisLine, out.String())
	}
	if otelLine == nil || otelLine["level"] != "ERROR" || !strings.Contains(otelLine["err"].(string), "traces export") {
		t.Errorf("OpenTelemetry's error: %v, want an ERROR line with err; log:\n%s", otelLine, out.String())
	}
}

// Durations are written as text in both log formats.
func TestLogDurationsAsText(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			log := newLogger(config.Config{LogFormat: format, LogLevel: slog.LevelInfo}, &out)
			log.Info("cached", "ttl", time.Hour, slog.Group("g", slog.Duration("wait", 1500*time.Millisecond)))
			got := out.String()
			want := map[string][]string{
				"text": {"ttl=1h0m0s", "g.wait=1.5s"},
				"json": {`"ttl":"1h0m0s"`, `"g":{"wait":"1.5s"}`},
			}[format]
			for _, w := range want {
				if !strings.Contains(got, w) {
					t.Errorf("log %q lacks %q", got, w)
				}
			}
		})
	}
}
