package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
)

// The named query measured: demo mode's my-stores, the caller's own stores
// of one type, run by the Boston user.
const (
	benchQuery     = "my-stores"
	benchStoreType = "Supermarket"
	benchQueryPath = "/v1/queries/" + benchQuery + "?storetype=" + benchStoreType
)

type queryResults struct {
	restBare, restHit, grpcBare, grpcHit, grpcSized result
	// answer is the size of the REST answer, rows its rows; tpTTL the
	// query's cache TTL in the throughput runs, tpQueries the SQL API
	// queries the emulator answered during them.
	answer, rows int
	tpTTL        time.Duration
	tpQueries    int64
	economy      economyResult // instantiations: the SQL API queries
}

// queriesBench runs the named query's throughput rows, then its upstream
// economy run.
func queriesBench(ctx context.Context, o options) (queryResults, error) {
	var out queryResults
	if err := queriesThroughput(ctx, o, &out); err != nil {
		return out, err
	}
	e, err := queriesEconomy(ctx, o)
	out.economy = e
	return out, err
}

// demoYAMLWithTTL is demo mode's configuration with my-stores' results
// kept for ttl (the only query it keeps for 1m).
func demoYAMLWithTTL(ttl time.Duration) (string, error) {
	y := string(config.DemoYAML())
	const demoTTL = "cache_ttl: 1m\n"
	if strings.Count(y, demoTTL) != 1 {
		return "", fmt.Errorf("demo mode's configuration no longer has my-stores' cache_ttl of 1m, as the benchmark expects")
	}
	return strings.Replace(y, demoTTL, "cache_ttl: "+ttl.String()+"\n", 1), nil
}

// queryTTL is the cache TTL of query name in b's configuration.
func queryTTL(b *brokertest.Broker, name string) (time.Duration, error) {
	for _, q := range b.App.Config().Queries {
		if q.Name == name {
			if q.CacheTTL <= 0 {
				return 0, fmt.Errorf("query %s keeps no results (cache_ttl %s)", name, q.CacheTTL)
			}
			return q.CacheTTL, nil
		}
	}
	return 0, fmt.Errorf("no query %s", name)
}

// queriesThroughput drives a cached named query over REST beside a bare
// net/http handler answering the same body with the same headers, and over
// gRPC beside bare grpc-go (the health service; and the broker's own
// RunQuery answer, a control). Demo mode keeps my-stores' results for 1m,
// less than the runs take: the broker runs demo mode's configuration with
// o.queryTTL instead, so every call after the first is a hit.
func queriesThroughput(ctx context.Context, o options, out *queryResults) error {
	yaml, err := demoYAMLWithTTL(o.queryTTL)
	if err != nil {
		return err
	}
	b, stop, err := startBroker(brokertest.Config(yaml))
	if err != nil {
		return err
	}
	defer stop()
	if out.tpTTL, err = queryTTL(b, benchQuery); err != nil {
		return err
	}
	b.Emulator.SetFaults(cartosim.Faults{Latency: o.latency})
	hc := gatewayClient(o.concurrency)
	session, err := bostonSession(ctx, hc, b.RESTURL)
	if err != nil {
		return err
	}
	restURL := b.RESTURL + benchQueryPath
	before := b.Emulator.Stats().SQLQueries
	// The first call is the miss, and pays the emulator's latency.
	status, header, body, err := gatewayGet(ctx, hc, restURL, session)
	if err != nil {
		return fmt.Errorf("first run: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("first run: status %d: %.200s", status, body)
	}
	var answer struct {
		Rows []json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return fmt.Errorf("first run's answer: %w", err)
	}
	out.answer, out.rows = len(body), len(answer.Rows)

	bareURL, stopBare, err := startBareAnswer(header, body)
	if err != nil {
		return err
	}
	defer stopBare()
	bareURL += benchQueryPath
	restBare := func() result {
		return drive(ctx, "bare net/http handler (the query's request, answer and headers)", o.concurrency, o.duration, func(ctx context.Context, _ int) error {
			return getOK(ctx, hc, bareURL, session)
		})
	}
	restHit := func() result {
		return drive(ctx, "broker REST GET "+benchQueryPath+" (cache hit)", o.concurrency, o.duration, func(ctx context.Context, _ int) error {
			return getOK(ctx, hc, restURL, session)
		})
	}

	// gRPC: the same query, a hit of the same result.
	conns, err := dial(b.GRPCAddr, o.conns)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	md := metadata.Pairs("authorization", "Bearer "+session)
	req := &tokenbrokerv1.RunQueryRequest{Name: benchQuery, Params: map[string]string{"storetype": benchStoreType}}
	clients := make([]tokenbrokerv1.TokenBrokerClient, len(conns))
	for i, c := range conns {
		clients[i] = tokenbrokerv1.NewTokenBrokerClient(c)
	}
	resp, err := clients[0].RunQuery(metadata.NewOutgoingContext(ctx, md), req)
	if err != nil {
		return fmt.Errorf("first RunQuery: %w", err)
	}
	if len(resp.GetRows()) != out.rows {
		return fmt.Errorf("RunQuery answered %d rows, REST %d", len(resp.GetRows()), out.rows)
	}
	grpcHit := func() result {
		return drive(ctx, "broker gRPC RunQuery "+benchQuery+" (cache hit)", o.concurrency, o.duration, func(ctx context.Context, w int) error {
			_, err := clients[w%len(clients)].RunQuery(metadata.NewOutgoingContext(ctx, md), req)
			return err
		})
	}
	echoAddr, stopEcho, err := startEcho()
	if err != nil {
		return err
	}
	defer stopEcho()
	echoConns, err := dial(echoAddr, o.conns)
	if err != nil {
		return err
	}
	defer closeAll(echoConns)
	grpcBare := func() result {
		return drive(ctx, "bare grpc-go unary (health Check)", o.concurrency, o.duration, func(ctx context.Context, w int) error {
			_, err := healthpb.NewHealthClient(echoConns[w%len(echoConns)]).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		})
	}
	sizedAddr, stopSized, err := startSizedEcho(sizedEcho{rows: resp})
	if err != nil {
		return err
	}
	defer stopSized()
	sizedConns, err := dial(sizedAddr, o.conns)
	if err != nil {
		return err
	}
	defer closeAll(sizedConns)
	grpcSized := func() result {
		return drive(ctx, "bare grpc-go, RunQuery's messages and metadata", o.concurrency, o.duration, func(ctx context.Context, w int) error {
			_, err := tokenbrokerv1.NewTokenBrokerClient(sizedConns[w%len(sizedConns)]).RunQuery(metadata.NewOutgoingContext(ctx, md), req)
			return err
		})
	}

	// Rounds alternate the targets (see throughput).
	for range o.rounds {
		out.restBare = out.restBare.merge(restBare())
		out.restHit = out.restHit.merge(restHit())
		out.grpcBare = out.grpcBare.merge(grpcBare())
		out.grpcHit = out.grpcHit.merge(grpcHit())
		out.grpcSized = out.grpcSized.merge(grpcSized())
	}
	out.tpQueries = b.Emulator.Stats().SQLQueries - before
	return nil
}

// queriesEconomy starts a broker in demo mode (my-stores' results kept for
// its 1m), and has o.concurrency callers run the query over REST from a
// cold result cache, o.queryLoads times in all. It counts the SQL API
// queries the emulator answered.
func queriesEconomy(ctx context.Context, o options) (economyResult, error) {
	b, stop, err := startBroker(brokertest.Demo())
	if err != nil {
		return economyResult{}, err
	}
	defer stop()
	var e economyResult
	if e.ttl, err = queryTTL(b, benchQuery); err != nil {
		return e, err
	}
	b.Emulator.SetFaults(cartosim.Faults{Latency: o.latency})
	hc := gatewayClient(o.concurrency)
	session, err := bostonSession(ctx, hc, b.RESTURL)
	if err != nil {
		return e, err
	}
	u := b.RESTURL + benchQueryPath
	const counter = "tokenbroker_query_results_total"
	before := b.Emulator.Stats().SQLQueries
	beforeCache, err := resultCounts(ctx, hc, b.RESTURL, counter)
	if err != nil {
		return e, err
	}
	// Every caller starts at once, on a cold cache: the first
	// o.concurrency runs are concurrent misses.
	e.lat, err = coldLoad(ctx, o.concurrency, o.queryLoads, 0, func(ctx context.Context) error {
		return getOK(ctx, hc, u, session)
	})
	if err != nil {
		return e, fmt.Errorf("query runs: %w", err)
	}
	e.loads = len(e.lat.lat)
	e.instantiations = b.Emulator.Stats().SQLQueries - before
	afterCache, err := resultCounts(ctx, hc, b.RESTURL, counter)
	if err != nil {
		return e, err
	}
	e.hit, e.shared, e.miss = afterCache["hit"]-beforeCache["hit"], afterCache["shared"]-beforeCache["shared"], afterCache["miss"]-beforeCache["miss"]
	return e, nil
}

// queriesTables runs the named-query part and prints its tables.
func queriesTables(ctx context.Context, o options, w io.Writer) error {
	q, err := queriesBench(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Named queries: %s (storetype=%s) as the Boston user, a %d-byte REST answer of %d rows; emulator latency %s upstream, paid by the first run only (cache_ttl %s for these runs, demo mode's 1m being shorter than them; SQL API queries during the runs: %d)\n\n",
		benchQuery, benchStoreType, q.answer, q.rows, o.latency, q.tpTTL, q.tpQueries)
	fmt.Fprintln(w, throughputHeader)
	ratioRow(w, q.restBare, nil, 0)
	ratioRow(w, q.restHit, &q.restBare, 0.60)
	ratioRow(w, q.grpcBare, nil, 0)
	ratioRow(w, q.grpcHit, &q.grpcBare, noTarget)
	ratioRow(w, q.grpcSized, &q.grpcBare, control)
	fmt.Fprintln(w)
	e := q.economy
	fmt.Fprintf(w, "Upstream economy: identical runs of %s over REST by one group (%d concurrent callers, cold result cache, demo mode's cache_ttl, emulator latency %s)\n\n", benchQuery, o.concurrency, o.latency)
	fmt.Fprintln(w, "| run | requests | errors | run time | cache TTL | lifetimes begun | SQL API queries | per lifetime elapsed | hit / shared / miss | p50 | p99 | target |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	fmt.Fprintf(w, "| %d requests | %d | %d | %.2f s | %s | %d | %d | %.2f | %d / %d / %d | %s | %s | ≤ 1 per lifetime %s |\n\n",
		e.loads, e.loads, e.lat.errs, e.lat.took.Seconds(), e.ttl, e.lifetimes(), e.instantiations, e.perLifetime(), e.hit, e.shared, e.miss,
		ms(e.lat.pct(50)), ms(e.lat.pct(99)), verdict(e.instantiations <= int64(e.lifetimes())))
	return nil
}
