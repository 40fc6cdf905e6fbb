package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

// OpenTelemetry's logr verbosities land on slog levels an operator sees:
// its warnings at warn, its info at debug, its debug below.
func TestOTelLoggerLevels(t *testing.T) {
	for _, tc := range []struct {
		name      string
		v         int
		wantLevel string // "" when not written at level debug
	}{
		{name: "warning", v: 1, wantLevel: "WARN"},
		{name: "info", v: 4, wantLevel: "DEBUG"},
		{name: "debug", v: 8},
		{name: "plain", v: 0, wantLevel: "INFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			l := OTelLogger(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
			l.V(tc.v).Info("hello", "k", "v")
			if tc.wantLevel == "" {
				if out.Len() != 0 {
					t.Fatalf("written: %s", out.String())
				}
				return
			}
			var m map[string]any
			if err := json.Unmarshal(out.Bytes(), &m); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			if m["level"] != tc.wantLevel || m["msg"] != "hello" || m["k"] != "v" {
				t.Errorf("got %v, want level %s", m, tc.wantLevel)
			}
		})
	}
}

// go-redis's messages come at the level they imply, without a doubled
// "redis:" prefix.
func TestRedisLogger(t *testing.T) {
	for _, tc := range []struct{ format, want, level string }{
		{"redis: connection pool: failed to dial after %d attempts", "redis client: connection pool: failed to dial after 1 attempts", "DEBUG"},
		{"sentinel: GetMasterAddrByName name=%d failed", "redis client: sentinel: GetMasterAddrByName name=1 failed", "DEBUG"},
		{"pubsub: unexpected message %d", "redis client: pubsub: unexpected message 1", "WARN"},
		{"addIdleConn panic: %v", "redis client: addIdleConn panic: 1", "ERROR"},
	} {
		var out bytes.Buffer
		RedisLogger{slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))}.Printf(context.Background(), tc.format, 1)
		var m map[string]any
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		if m["msg"] != tc.want || m["level"] != tc.level {
			t.Errorf("got %v, want %q at %s", m, tc.want, tc.level)
		}
	}
}
