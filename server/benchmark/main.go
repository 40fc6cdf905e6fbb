// Command benchmark measures the broker against the limits of its own stack,
// side by side in one run on the same machine, and prints a table:
//
//	go run ./server/benchmark            # defaults: c=50, 5 s per run
//
// It starts, in this process: the broker (demo mode; the CARTO emulator
// behind it with 50 ms latency), a bare grpc-go unary server (the health
// service, no interceptors) and a bare net/http JSON handler, and drives each
// with the same concurrency for the same time. Then the CARTO gateway: a
// cached map instantiation (deck.gl's GET) beside a bare net/http handler
// giving the same answer, and the upstream instantiations of many identical
// map loads from a cold gateway cache. Then a named query: a cached result
// over REST beside a bare net/http handler giving the same answer, over
// gRPC beside bare grpc-go, and the upstream queries of many identical runs
// from a cold result cache. Then a cold burst: 3 broker
// replicas on one Redis (a redis-server it starts), many callers of one group
// at once. Then logins per second at the demo users' bcrypt cost, and the
// memory each cached key costs. Client and server share the machine, so
// only ratios within one run mean anything.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"time"
)

type options struct {
	concurrency int
	duration    time.Duration
	latency     time.Duration
	burst       int
	replicas    int
	keys        []int
	conns       int
	rounds      int
	skipBurst   bool
	// The gateway part: identical map loads from a cold cache (default
	// TTL), then a load for gatewaySpan across a short TTL's ends.
	gatewayLoads    int
	gatewaySpan     time.Duration
	gatewayShortTTL time.Duration
	// The named-query part: my-stores' cache_ttl in its throughput runs,
	// and the identical runs from a cold result cache.
	queryTTL   time.Duration
	queryLoads int
	only       map[string]bool // parts to run; empty runs all
	cpuProfile string
}

func main() {
	var o options
	var keys string
	flag.IntVar(&o.concurrency, "c", 50, "concurrent callers in the throughput runs")
	flag.DurationVar(&o.duration, "d", 5*time.Second, "duration of each throughput run")
	flag.DurationVar(&o.latency, "latency", 50*time.Millisecond, "latency the CARTO emulator adds")
	flag.IntVar(&o.burst, "burst", 1000, "callers in the cold burst")
	flag.IntVar(&o.replicas, "replicas", 3, "broker replicas in the cold burst")
	flag.IntVar(&o.conns, "conns", 4, "client connections per target")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of the throughput runs (targets alternate; median ratio reported)")
	flag.StringVar(&keys, "keys", "10000,100000", "cached-key counts for the memory measurement")
	flag.BoolVar(&o.skipBurst, "skip-burst", false, "skip the cold burst (needs redis-server)")
	flag.IntVar(&o.gatewayLoads, "gateway-loads", 10000, "identical map loads of one group in the gateway's economy run (cold cache, default TTL)")
	flag.DurationVar(&o.gatewaySpan, "gateway-span", 10*time.Second, "duration of the gateway's load across short cache lifetimes (0: skip it)")
	flag.DurationVar(&o.gatewayShortTTL, "gateway-ttl", 2*time.Second, "CARTO_GATEWAY_CACHE_TTL of that load")
	flag.DurationVar(&o.queryTTL, "query-ttl", time.Hour, "my-stores' cache_ttl in the named queries' throughput runs (demo mode's 1m is shorter than they take)")
	flag.IntVar(&o.queryLoads, "query-loads", 10000, "identical runs of one group's named query in its economy run (cold result cache, demo mode's cache_ttl)")
	only := flag.String("only", "", "run only these parts, comma-separated: throughput, gateway, queries, burst, logins, memory")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (see -only) to this file")
	flag.Parse()
	o.only = map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		switch p = strings.TrimSpace(p); p {
		case "":
		case "throughput", "gateway", "queries", "burst", "logins", "memory":
			o.only[p] = true
		default:
			fmt.Fprintf(os.Stderr, "benchmark: bad -only part %q\n", p)
			os.Exit(2)
		}
	}
	if o.gatewayLoads <= 0 || o.gatewaySpan < 0 || o.gatewayShortTTL <= 0 {
		fmt.Fprintln(os.Stderr, "benchmark: -gateway-loads and -gateway-ttl must be positive, -gateway-span not negative")
		os.Exit(2)
	}
	if o.queryLoads <= 0 || o.queryTTL <= 0 || o.queryTTL > 24*time.Hour {
		fmt.Fprintln(os.Stderr, "benchmark: -query-loads must be positive, -query-ttl in (0, 24h]")
		os.Exit(2)
	}
	for _, k := range strings.Split(keys, ",") {
		var n int
		if _, err := fmt.Sscan(k, &n); err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "benchmark: bad -keys %q\n", keys)
			os.Exit(2)
		}
		o.keys = append(o.keys, n)
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, w io.Writer) error {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "TokenBroker benchmark, %s, %s, GOMAXPROCS=%d, c=%d, %d rounds of %s per target, emulator latency %s\n\n",
		time.Now().UTC().Format("2006-01-02"), host, gomaxprocs(), o.concurrency, o.rounds, o.duration, o.latency)

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if o.runs("throughput") {
		if err := throughputTable(ctx, o, w); err != nil {
			return err
		}
	}
	if o.runs("gateway") {
		if err := gatewayTables(ctx, o, w); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	if o.runs("queries") {
		if err := queriesTables(ctx, o, w); err != nil {
			return fmt.Errorf("named queries: %w", err)
		}
	}
	if o.runs("burst") && !o.skipBurst {
		b, err := coldBurst(ctx, o)
		if err != nil {
			return fmt.Errorf("cold burst: %w", err)
		}
		fmt.Fprintf(w, "Cold burst: %d callers of one group over %d replicas on one Redis, emulator latency %s, empty token cache\n\n", o.burst, o.replicas, o.latency)
		fmt.Fprintln(w, "| first token | p50 | p99 | max | errors | token creations | OAuth requests | target |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
		p99Target := o.latency + 50*time.Millisecond
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %d | %d | 1 creation %s; p99 ≤ %s %s |\n\n",
			ms(b.first), ms(b.lat.pct(50)), ms(b.lat.pct(99)), ms(b.lat.pct(100)), b.lat.errs, b.creations, b.oauth,
			verdict(b.creations == 1), ms(p99Target), verdict(b.lat.pct(99) <= p99Target))
	}
	if o.runs("logins") {
		l, err := logins(ctx, o)
		if err != nil {
			return fmt.Errorf("logins: %w", err)
		}
		fmt.Fprintf(w, "Logins: %.1f/s at bcrypt cost %d (%d concurrent callers, bcrypt bounded to %d at once), p50 %s\n\n", l.rps(), l.cost, l.callers, gomaxprocs(), ms(l.pct(50)))
	}
	if o.runs("memory") {
		fmt.Fprintln(w, "| cached keys | bytes per key | target |")
		fmt.Fprintln(w, "|---|---|---|")
		for _, n := range o.keys {
			per, err := memoryPerKey(ctx, n)
			if err != nil {
				return fmt.Errorf("memory: %w", err)
			}
			fmt.Fprintf(w, "| %d | %.0f | ≤ 2048 %s |\n", n, per, verdict(per <= 2048))
		}
	}
	return nil
}

// runs reports whether part is to run.
func (o options) runs(part string) bool { return len(o.only) == 0 || o.only[part] }

// throughputTable runs the side-by-side throughput runs and prints their table.
func throughputTable(ctx context.Context, o options, w io.Writer) error {
	tp, err := throughput(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, throughputHeader)
	row := func(r result, base *result, target float64) { ratioRow(w, r, base, target) }
	row(tp.echo, nil, 0)
	row(tp.grpcHit, &tp.echo, 0.80)
	row(tp.echoSized, &tp.echo, control)
	row(tp.httpBare, nil, 0)
	row(tp.restHit, &tp.httpBare, 0.60)
	fmt.Fprintln(w)
	return nil
}

const throughputHeader = "| path | req/s (median of rounds) | p50 | p99 | errors | ratio (median of rounds) | target |\n|---|---|---|---|---|---|---|"

// Targets of ratioRow that are no ratio to reach.
const (
	control  = -1.0 // a control run
	noTarget = -2.0 // a ratio the issue sets no target for, reported
)

// ratioRow prints r's row of a throughput table: its ratio to base (the
// median of the rounds' ratios) against target, or marked control or
// noTarget; base nil is a baseline.
func ratioRow(w io.Writer, r result, base *result, target float64) {
	ratio, goal := "1.00 (baseline)", ""
	if base != nil {
		var rs []float64
		for i := range r.rounds {
			rs = append(rs, r.rounds[i]/base.rounds[i])
		}
		ratio = fmt.Sprintf("%.2f (rounds %s)", median(rs), fmtList(rs))
		switch {
		case target == control:
			goal = "(control)"
		case target == noTarget:
			goal = "none set (information)"
		default:
			goal = fmt.Sprintf("≥ %.2f %s", target, verdict(median(rs) >= target))
		}
	}
	fmt.Fprintf(w, "| %s | %.0f | %s | %s | %d | %s | %s |\n", r.name, median(r.rounds), ms(r.pct(50)), ms(r.pct(99)), r.errs, ratio, goal)
}

// verdict says whether a target is met, as the tables print it.
func verdict(met bool) string {
	if met {
		return "**met**"
	}
	return "**missed**"
}

// result is one run's latencies.
type result struct {
	name string
	lat  []time.Duration
	errs int
	took time.Duration
	cost int // bcrypt cost, for logins
	// callers is the concurrency of the run.
	callers int
	// rounds are the req/s of each round.
	rounds []float64
}

func (r result) rps() float64 { return float64(len(r.lat)) / r.took.Seconds() }

// pct is the p-th percentile latency (100: the maximum).
func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), r.lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// merge adds a round's run to r.
func (r result) merge(round result) result {
	round.lat = append(r.lat, round.lat...)
	round.errs += r.errs
	round.took += r.took
	round.rounds = append(r.rounds, float64(len(round.lat)-len(r.lat))/(round.took-r.took).Seconds())
	return round
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func fmtList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
