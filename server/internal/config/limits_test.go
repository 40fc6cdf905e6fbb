package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The gRPC limits (finding 5): safe defaults, explicit values taken, and
// every bad value named at once.
func TestGRPCLimits(t *testing.T) {
	dir := t.TempDir()
	load := func(extra map[string]string) (Config, error) {
		env := valid(t, dir)
		for k, v := range extra {
			env[k] = v
		}
		return Load([]string{"--env-file="}, envOf(env))
	}
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := GRPCLimits{MaxConcurrentStreams: 100, MaxHealthWatches: 1000, MaxReflectionStreams: 100,
		MaxConnectionIdle: 15 * time.Minute, MaxConnectionAge: 30 * time.Minute, MaxConnectionAgeGrace: time.Minute, KeepaliveMinTime: 10 * time.Second}
	if c.GRPC != want {
		t.Fatalf("defaults %+v, want %+v", c.GRPC, want)
	}
	c, err = load(map[string]string{"GRPC_MAX_CONCURRENT_STREAMS": "20", "GRPC_MAX_HEALTH_WATCHES": "50", "GRPC_MAX_REFLECTION_STREAMS": "5",
		"GRPC_MAX_CONNECTION_IDLE": "1m", "GRPC_MAX_CONNECTION_AGE": "2h", "GRPC_KEEPALIVE_MIN_TIME": "30s"})
	if err != nil {
		t.Fatal(err)
	}
	want = GRPCLimits{MaxConcurrentStreams: 20, MaxHealthWatches: 50, MaxReflectionStreams: 5,
		MaxConnectionIdle: time.Minute, MaxConnectionAge: 2 * time.Hour, MaxConnectionAgeGrace: time.Minute, KeepaliveMinTime: 30 * time.Second}
	if c.GRPC != want {
		t.Fatalf("set %+v, want %+v", c.GRPC, want)
	}
	_, err = load(map[string]string{"GRPC_MAX_CONCURRENT_STREAMS": "0", "GRPC_MAX_HEALTH_WATCHES": "-1", "GRPC_MAX_REFLECTION_STREAMS": "lots",
		"GRPC_MAX_CONNECTION_IDLE": "1s", "GRPC_MAX_CONNECTION_AGE": "48h", "GRPC_KEEPALIVE_MIN_TIME": "soon"})
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	for _, w := range []string{`GRPC_MAX_CONCURRENT_STREAMS: "0" is not a whole number from 1 to 10000`, `GRPC_MAX_HEALTH_WATCHES: "-1"`,
		`GRPC_MAX_REFLECTION_STREAMS: "lots"`, "GRPC_MAX_CONNECTION_IDLE 1s is outside [10s, 24h0m0s]", "GRPC_MAX_CONNECTION_AGE 48h0m0s is outside",
		`GRPC_KEEPALIVE_MIN_TIME: "soon" is not a duration`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}
