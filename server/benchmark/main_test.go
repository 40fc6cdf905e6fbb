package main

import (
	"context"
	"regexp"
	"strconv"
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
	// The gateway part has its own test (TestBenchmarkGateway).
	o := options{concurrency: 4, duration: 150 * time.Millisecond, rounds: 1, latency: 5 * time.Millisecond,
		burst: 30, replicas: 2, keys: []int{500}, conns: 1,
		only: map[string]bool{"throughput": true, "burst": true, "logins": true, "memory": true}}
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

// The gateway part runs at a tiny size and prints its rows: both
// throughput rows without errors; the loads from a cold cache cost exactly
// one instantiation upstream, the concurrent misses sharing it; the load
// across short cache lifetimes costs at most one per lifetime it began.
func TestBenchmarkGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers")
	}
	// The emulator's latency is long enough for the callers started at
	// once to find the first call in flight.
	o := options{concurrency: 8, duration: 150 * time.Millisecond, rounds: 1, latency: 100 * time.Millisecond, conns: 1,
		gatewayLoads: 400, gatewaySpan: 700 * time.Millisecond, gatewayShortTTL: 300 * time.Millisecond,
		only: map[string]bool{"gateway": true}}
	var out strings.Builder
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	t.Log("\n" + got)
	for _, name := range []string{"bare net/http handler (the gateway's request, answer and headers)", "broker gateway GET /carto/v3/maps/carto_dw/query (deck.gl's, cache hit)"} {
		m := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(name) + ` \| \d+ \| [^|]+\| [^|]+\| (\d+) \|`).FindStringSubmatch(got)
		if m == nil {
			t.Errorf("no row %q", name)
		} else if m[1] != "0" {
			t.Errorf("%s: %s errors", name, m[1])
		}
	}
	if !strings.Contains(got, "upstream instantiations during the runs: 1)") {
		t.Error("the throughput runs did not cost exactly 1 instantiation")
	}
	// run | loads | errors | time | TTL | lifetimes begun | instantiations | per lifetime | hit / shared / miss
	rows := regexp.MustCompile(`(?m)^\| (\d+ loads|\S+ of load) \| (\d+) \| (\d+) \| [\d.]+ s \| \S+ \| (\d+) \| (\d+) \| [\d.]+ \| (\d+) / (\d+) / (\d+) \|`).FindAllStringSubmatch(got, -1)
	if len(rows) != 2 {
		t.Fatalf("%d economy rows, want 2", len(rows))
	}
	n := func(s string) int { i, _ := strconv.Atoi(s); return i }
	for _, r := range rows {
		loads, errs, lifetimes, inst, hit, shared, miss := n(r[2]), n(r[3]), n(r[4]), n(r[5]), n(r[6]), n(r[7]), n(r[8])
		if errs != 0 || hit+shared+miss != loads || miss != inst {
			t.Errorf("%s: %d loads, %d errors, %d/%d/%d hit/shared/miss, %d instantiations", r[1], loads, errs, hit, shared, miss, inst)
		}
		if inst > lifetimes {
			t.Errorf("%s: %d instantiations over %d cache lifetimes", r[1], inst, lifetimes)
		}
	}
	if first := rows[0]; first[1] != "400 loads" || n(first[4]) != 1 || n(first[5]) != 1 || n(first[7]) == 0 {
		t.Errorf("400 loads from a cold cache: %s lifetimes, %s instantiations, %s shared; want 1, 1 and some shared", first[4], first[5], first[7])
	}
}

// The named-query part runs at a tiny size and prints its rows: every
// throughput row without errors, the throughput runs costing one SQL API
// query (the first run's); the identical runs from a cold result cache cost
// exactly one, the concurrent misses sharing it.
func TestBenchmarkQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers")
	}
	// The emulator's latency is long enough for the callers started at
	// once to find the first run in flight.
	o := options{concurrency: 8, duration: 150 * time.Millisecond, rounds: 1, latency: 100 * time.Millisecond, conns: 1,
		queryTTL: time.Hour, queryLoads: 400, only: map[string]bool{"queries": true}}
	var out strings.Builder
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	t.Log("\n" + got)
	for _, name := range []string{
		"bare net/http handler (the query's request, answer and headers)",
		"broker REST GET /v1/queries/my-stores?storetype=Supermarket (cache hit)",
		"bare grpc-go unary (health Check)",
		"broker gRPC RunQuery my-stores (cache hit)",
		"bare grpc-go, RunQuery's messages and metadata",
	} {
		m := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(name) + ` \| \d+ \| [^|]+\| [^|]+\| (\d+) \|`).FindStringSubmatch(got)
		if m == nil {
			t.Errorf("no row %q", name)
		} else if m[1] != "0" {
			t.Errorf("%s: %s errors", name, m[1])
		}
	}
	if !strings.Contains(got, "SQL API queries during the runs: 1)") {
		t.Error("the throughput runs did not cost exactly 1 SQL API query")
	}
	// run | requests | errors | time | TTL | lifetimes begun | queries | per lifetime | hit / shared / miss
	r := regexp.MustCompile(`(?m)^\| \d+ requests \| (\d+) \| (\d+) \| [\d.]+ s \| \S+ \| (\d+) \| (\d+) \| [\d.]+ \| (\d+) / (\d+) / (\d+) \|`).FindStringSubmatch(got)
	if r == nil {
		t.Fatal("no economy row")
	}
	n := func(s string) int { i, _ := strconv.Atoi(s); return i }
	reqs, errs, lifetimes, queries, hit, shared, miss := n(r[1]), n(r[2]), n(r[3]), n(r[4]), n(r[5]), n(r[6]), n(r[7])
	if reqs != 400 || errs != 0 || hit+shared+miss != reqs || miss != 1 || lifetimes != 1 || queries != 1 || shared == 0 {
		t.Errorf("400 runs from a cold cache: %d requests, %d errors, %d/%d/%d hit/shared/miss, %d lifetimes, %d SQL API queries; want 400, 0, one miss and some shared, 1, 1", reqs, errs, hit, shared, miss, lifetimes, queries)
	}
}
