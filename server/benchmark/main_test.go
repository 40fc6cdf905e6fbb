package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
)

// The benchmark runs end to end at a tiny size and prints every table, with
// no errors and exactly one creation in the cold burst. (Its figures are
// not checked: on a shared machine only a real run's ratios mean anything.)
func TestBenchmarkSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers, Redis and bcrypt logins")
	}
	o := options{concurrency: 4, duration: 150 * time.Millisecond, rounds: 1, latency: 5 * time.Millisecond,
		burst: 30, replicas: 2, keys: []int{500}, conns: 1, only: map[string]bool{}}
	o.skipBurst = redistest.Missing(t) // the cold burst runs on Redis
	var out strings.Builder
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{
		"| bare grpc-go unary (health Check) |",
		"| broker gRPC IssueCartoToken (cache hit) |",
		"| bare net/http JSON handler",
		"| broker REST POST /carto-token (cache hit) |",
		"Logins: ",
		"| 500 | ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Every throughput row ran without errors (the errors column is 0).
	for _, m := range regexp.MustCompile(`(?m)^\| (?:bare|broker) [^|]+\| \d+ \| [^|]+\| [^|]+\| (\d+) \|`).FindAllStringSubmatch(got, -1) {
		if m[1] != "0" {
			t.Errorf("a throughput run had errors: %s", m[0])
		}
	}
	if !o.skipBurst {
		// first | p50 | p99 | max | errors | creations | oauth
		burst := regexp.MustCompile(`(?m)^\| [\d.]+ ms \| [\d.]+ ms \| [\d.]+ ms \| [\d.]+ ms \| (\d+) \| (\d+) \| (\d+) \|`).FindStringSubmatch(got)
		if burst == nil {
			t.Fatal("no cold burst row")
		}
		if burst[1] != "0" || burst[2] != "1" || burst[3] != "1" {
			t.Errorf("cold burst: %s errors, %s creations, %s OAuth requests; want 0, 1, 1", burst[1], burst[2], burst[3])
		}
	}
}
