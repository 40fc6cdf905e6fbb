package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
)

// guideQuery is the guide's query, as its deck.gl frontend sends it.
const guideQuery = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @groupcity"

// deckGLQuery is the query string deck.gl 9.0.14's vectorQuerySource sends
// for the guide's map, in its order.
func deckGLQuery() string {
	var b strings.Builder
	for i, kv := range [][2]string{
		{"v", "3.4"}, {"deckglVersion", "9.0.14"}, {"client", "deck-gl-carto"},
		{"spatialDataColumn", "geom"}, {"spatialDataType", "geo"}, {"tileResolution", "0.5"},
		{"q", guideQuery}, {"queryParameters", `{"groupcity":"BOSTON"}`},
	} {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[0] + "=" + url.QueryEscape(kv[1]))
	}
	return b.String()
}

// gatewayPath is the instantiation route the guide's frontend calls, under
// demo mode's gateway.
const gatewayPath = "/carto/v3/maps/carto_dw/query"

type gatewayResults struct {
	bare, hit result
	// answer is the size of the instantiation answer; tpInstantiations the
	// upstream instantiations during the throughput runs.
	answer           int
	tpInstantiations int64
	tpTTL            time.Duration
	economy          []economyResult
}

// economyResult is a load of identical map loads of one group, from a cold
// gateway cache.
type economyResult struct {
	span           time.Duration // the load's set duration; 0 for a set number of loads
	loads          int
	lat            result
	ttl            time.Duration
	instantiations int64
	hit, shared    int64 // the gateway's count of how the loads were answered
	miss           int64
}

// lifetimes is how many cache lifetimes the run began: at most one
// instantiation each.
func (e economyResult) lifetimes() int { return int(math.Ceil(float64(e.lat.took) / float64(e.ttl))) }

// perLifetime is the instantiations per cache lifetime elapsed (the run's
// instantiations when it fits in one).
func (e economyResult) perLifetime() float64 {
	return float64(e.instantiations) / max(1, float64(e.lat.took)/float64(e.ttl))
}

// gatewayClient is one deck.gl frontend's HTTP client.
func gatewayClient(c int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}}
}

// gatewayGet sends the guide's GET with deck.gl's headers and reads the
// answer whole.
func gatewayGet(ctx context.Context, hc *http.Client, u, token string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// getOK is one GET answered 200 (a map load, a named query's run), its
// answer read whole.
func getOK(ctx context.Context, hc *http.Client, u, token string) error {
	status, _, body, err := gatewayGet(ctx, hc, u, token)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", status, body)
	}
	return nil
}

// gatewayBench runs the gateway's throughput rows, then its upstream
// economy runs.
func gatewayBench(ctx context.Context, o options) (gatewayResults, error) {
	var out gatewayResults
	if err := gatewayThroughput(ctx, o, &out); err != nil {
		return out, err
	}
	e, err := gatewayEconomy(ctx, o, "", o.gatewayLoads, 0)
	if err != nil {
		return out, err
	}
	out.economy = append(out.economy, e)
	if o.gatewaySpan > 0 {
		e, err := gatewayEconomy(ctx, o, o.gatewayShortTTL.String(), 0, o.gatewaySpan)
		if err != nil {
			return out, err
		}
		out.economy = append(out.economy, e)
	}
	return out, nil
}

// gatewayThroughput drives a cached instantiation over the gateway beside
// a bare net/http handler answering the same body with the same headers.
func gatewayThroughput(ctx context.Context, o options, out *gatewayResults) error {
	// The cache outlives the runs (its longest allowed TTL): every call
	// after the first is a hit.
	b, stop, err := startBroker(brokertest.Demo(), brokertest.Env(map[string]string{"CARTO_GATEWAY_CACHE_TTL": "10m"}))
	if err != nil {
		return err
	}
	defer stop()
	out.tpTTL = b.App.Config().Gateway.CacheTTL
	b.Emulator.SetFaults(cartosim.Faults{Latency: o.latency})
	hc := gatewayClient(o.concurrency)
	token, err := bostonCartoToken(ctx, hc, b.RESTURL)
	if err != nil {
		return err
	}
	gwURL := b.RESTURL + gatewayPath + "?" + deckGLQuery()
	before := b.Emulator.Stats().MapsQueries
	// The first call is the miss, and pays the emulator's latency.
	status, header, body, err := gatewayGet(ctx, hc, gwURL, token)
	if err != nil {
		return fmt.Errorf("first instantiation: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("first instantiation: status %d: %.200s", status, body)
	}
	out.answer = len(body)

	bareURL, stopBare, err := startBareAnswer(header, body)
	if err != nil {
		return err
	}
	defer stopBare()
	bareURL += gatewayPath + "?" + deckGLQuery()
	bare := func() result {
		return drive(ctx, "bare net/http handler (the gateway's request, answer and headers)", o.concurrency, o.duration, func(ctx context.Context, _ int) error {
			return getOK(ctx, hc, bareURL, token)
		})
	}
	hit := func() result {
		return drive(ctx, "broker gateway GET /carto/v3/maps/carto_dw/query (deck.gl's, cache hit)", o.concurrency, o.duration, func(ctx context.Context, _ int) error {
			return getOK(ctx, hc, gwURL, token)
		})
	}
	for range o.rounds {
		out.bare = out.bare.merge(bare())
		out.hit = out.hit.merge(hit())
	}
	out.tpInstantiations = b.Emulator.Stats().MapsQueries - before
	return nil
}

// startBareAnswer serves body with header (less what the server sets
// itself) to every request, reading nothing: net/http's own cost of the
// gateway's exchange.
func startBareAnswer(header http.Header, body []byte) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	h := header.Clone()
	for _, k := range []string{"Date", "Content-Length", "Connection", "Transfer-Encoding"} {
		h.Del(k)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range h {
			w.Header()[k] = v
		}
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// gatewayEconomy starts a broker (gateway cache TTL ttl, the default when
// ""), and has o.concurrency callers load the guide's map from a cold
// gateway cache: loads times, or for span when loads is 0. It counts the
// instantiations the emulator answered.
func gatewayEconomy(ctx context.Context, o options, ttl string, loads int, span time.Duration) (economyResult, error) {
	if (loads > 0) == (span > 0) {
		return economyResult{}, fmt.Errorf("an economy run takes a number of loads or a duration (got %d and %s)", loads, span)
	}
	var opts []brokertest.Option
	if ttl != "" {
		opts = append(opts, brokertest.Env(map[string]string{"CARTO_GATEWAY_CACHE_TTL": ttl}))
	}
	b, stop, err := startBroker(append([]brokertest.Option{brokertest.Demo()}, opts...)...)
	if err != nil {
		return economyResult{}, err
	}
	defer stop()
	e := economyResult{ttl: b.App.Config().Gateway.CacheTTL, span: span}
	if e.ttl <= 0 {
		return e, fmt.Errorf("gateway cache TTL %s: the cache is off", e.ttl)
	}
	b.Emulator.SetFaults(cartosim.Faults{Latency: o.latency})
	hc := gatewayClient(o.concurrency)
	token, err := bostonCartoToken(ctx, hc, b.RESTURL)
	if err != nil {
		return e, err
	}
	gwURL := b.RESTURL + gatewayPath + "?" + deckGLQuery()
	before := b.Emulator.Stats().MapsQueries
	beforeCache, err := gatewayCacheCounts(ctx, hc, b.RESTURL)
	if err != nil {
		return e, err
	}

	// Every caller starts at once, on a cold cache: the first
	// o.concurrency loads are concurrent misses.
	e.lat, err = coldLoad(ctx, o.concurrency, loads, span, func(ctx context.Context) error {
		return getOK(ctx, hc, gwURL, token)
	})
	if err != nil {
		return e, fmt.Errorf("map loads: %w", err)
	}
	e.loads = len(e.lat.lat)
	e.instantiations = b.Emulator.Stats().MapsQueries - before
	afterCache, err := gatewayCacheCounts(ctx, hc, b.RESTURL)
	if err != nil {
		return e, err
	}
	e.hit, e.shared, e.miss = afterCache["hit"]-beforeCache["hit"], afterCache["shared"]-beforeCache["shared"], afterCache["miss"]-beforeCache["miss"]
	return e, nil
}

// coldLoad has callers call at once, all released together: loads calls in
// all, or as many as they make in span when loads is 0. It records every
// latency, and returns an error naming the first failure when any failed.
func coldLoad(ctx context.Context, callers, loads int, span time.Duration, call func(context.Context) error) (result, error) {
	var next atomic.Int64
	var deadline time.Time
	more := func() bool {
		if loads > 0 {
			return next.Add(1) <= int64(loads)
		}
		return time.Now().Before(deadline)
	}
	lats := make([][]time.Duration, callers)
	errs := make([]int, callers)
	var firstErr atomic.Value
	var ready, wg sync.WaitGroup
	begin := make(chan struct{})
	for w := range callers {
		ready.Add(1)
		wg.Go(func() {
			ready.Done()
			<-begin
			for more() {
				t0 := time.Now()
				if err := call(ctx); err != nil {
					errs[w]++
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		})
	}
	ready.Wait()
	start := time.Now()
	deadline = start.Add(span)
	close(begin)
	wg.Wait()
	r := result{took: time.Since(start), callers: callers}
	for w := range callers {
		r.lat = append(r.lat, lats[w]...)
		r.errs += errs[w]
	}
	if msg, ok := firstErr.Load().(string); ok {
		return r, fmt.Errorf("%d failed, the first: %s", r.errs, msg)
	}
	return r, nil
}

// gatewayCacheCounts reads the broker's count of instantiations by how
// they were answered (hit, shared, miss) from its /metrics.
func gatewayCacheCounts(ctx context.Context, hc *http.Client, restURL string) (map[string]int64, error) {
	return resultCounts(ctx, hc, restURL, "tokenbroker_gateway_instantiations_total")
}

// resultCounts reads a counter of the broker's /metrics whose one label is
// result, by its values.
func resultCounts(ctx context.Context, hc *http.Client, restURL, counter string) (map[string]int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, restURL+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	series := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(counter) + `\{result="(\w+)"\} (\d+)`)
	out := map[string]int64{}
	for _, m := range series.FindAllSubmatch(text, -1) {
		out[string(m[1])], _ = strconv.ParseInt(string(m[2]), 10, 64)
	}
	return out, nil
}

// bostonCartoToken logs the Boston demo user in over REST and returns the
// CARTO token the guide's frontend would get.
func bostonCartoToken(ctx context.Context, hc *http.Client, restURL string) (string, error) {
	session, err := bostonSession(ctx, hc, restURL)
	if err != nil {
		return "", err
	}
	var issued struct {
		Token string `json:"token"`
	}
	if err := postJSON(ctx, hc, restURL+"/carto-token", session, nil, &issued); err != nil {
		return "", fmt.Errorf("carto-token: %w", err)
	}
	if issued.Token == "" {
		return "", fmt.Errorf("carto-token: no token")
	}
	return issued.Token, nil
}

// bostonSession logs the Boston demo user in over REST and returns the
// session token.
func bostonSession(ctx context.Context, hc *http.Client, restURL string) (string, error) {
	var login struct {
		Token string `json:"token"`
	}
	cred, _ := json.Marshal(map[string]string{"username": brokertest.BostonUser, "password": brokertest.BostonPassword})
	if err := postJSON(ctx, hc, restURL+"/login", "", cred, &login); err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	if login.Token == "" {
		return "", fmt.Errorf("login: no token")
	}
	return login.Token, nil
}

func postJSON(ctx context.Context, hc *http.Client, u, bearer string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode) // the body may quote what was sent
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// gatewayTables runs the gateway part and prints its tables.
func gatewayTables(ctx context.Context, o options, w io.Writer) error {
	g, err := gatewayBench(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "CARTO gateway: the guide's deck.gl GET (Boston token), a %d-byte instantiation answer; emulator latency %s upstream, paid by the first call only (cache TTL %s; upstream instantiations during the runs: %d)\n\n",
		g.answer, o.latency, g.tpTTL, g.tpInstantiations)
	fmt.Fprintln(w, throughputHeader)
	ratioRow(w, g.bare, nil, 0)
	ratioRow(w, g.hit, &g.bare, 0.60)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Upstream economy: identical map loads of one group (%d concurrent callers, cold gateway cache, emulator latency %s)\n\n", o.concurrency, o.latency)
	fmt.Fprintln(w, "| run | map loads | errors | run time | cache TTL | lifetimes begun | upstream instantiations | per lifetime elapsed | hit / shared / miss | p50 | p99 | target |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, e := range g.economy {
		name := fmt.Sprintf("%d loads", e.loads)
		if e.span > 0 {
			name = fmt.Sprintf("%s of load", e.span)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.2f s | %s | %d | %d | %.2f | %d / %d / %d | %s | %s | ≤ 1 per lifetime %s |\n",
			name, e.loads, e.lat.errs, e.lat.took.Seconds(), e.ttl, e.lifetimes(), e.instantiations, e.perLifetime(), e.hit, e.shared, e.miss,
			ms(e.lat.pct(50)), ms(e.lat.pct(99)), verdict(e.instantiations <= int64(e.lifetimes())))
	}
	fmt.Fprintln(w)
	return nil
}
