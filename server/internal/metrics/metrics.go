// Package metrics holds the broker's Prometheus metrics. Every label has a
// small, fixed set of values: no usernames, groups or tokens, so neither a
// secret nor an unbounded number of series can appear.
package metrics

import (
	"context"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the broker's metrics, on their own registry.
type Metrics struct {
	Registry *prometheus.Registry
	// GRPC counts requests and their latency by method and code (REST calls
	// included: they run through the same interceptors).
	GRPC *grpcprom.ServerMetrics

	issuances    *prometheus.CounterVec
	hits, mints  prometheus.Counter // the issuances' two series, resolved once
	refreshes    *prometheus.CounterVec
	cartoCalls   *prometheus.CounterVec
	cartoLatency *prometheus.HistogramVec
	logins       *prometheus.CounterVec
	revocations  *prometheus.CounterVec
	tokensMinted prometheus.Counter
	gateway      *prometheus.CounterVec
	gatewayCache *prometheus.CounterVec
	queryResults *prometheus.CounterVec
	queryEvicted prometheus.Counter
	queryLatency *prometheus.HistogramVec
	queryRuns    *prometheus.CounterVec
	// The gateway's series, resolved once: a cache hit is a few µs, and
	// WithLabelValues hashes its labels on every call.
	gatewaySeries map[[2]string]prometheus.Counter
	cacheSeries   map[string]prometheus.Counter
}

// Gauges are read at scrape time.
type Gauges struct {
	// LiveTokens counts the unexpired CARTO tokens held.
	LiveTokens func(ctx context.Context) (int, error)
	// MaxLiveTokens and MaxMintsPerHour are the quota ceilings (0: none);
	// MintsThisHour reads the creations counted in the current window.
	MaxLiveTokens   int
	MaxMintsPerHour int
	MintsThisHour   func(ctx context.Context) (int64, error)
}

// New registers the broker's metrics, the Go runtime's and the process's.
func New(g Gauges) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		GRPC: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}))),
		issuances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenbroker_issuances_total", Help: "CARTO tokens handed out, by whether they came from the cache (hit) or were minted for the call (mint).",
		}, []string{"result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenbroker_cache_refreshes_total", Help: "Background refreshes of CARTO tokens nearing the end of their life, by outcome.",
		}, []string{"outcome"}),
		cartoCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenbroker_carto_calls_total", Help: "Calls to CARTO by endpoint and outcome (every attempt counts).",
		}, []string{"endpoint", "outcome"}),
		cartoLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokenbroker_carto_call_seconds", Help: "Latency of calls to CARTO by endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenbroker_logins_total", Help: "Login attempts by outcome: success, failure (bad credentials), locked_out, shed (too many at once), invalid, error.",
		}, []string{"outcome"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenbroker_revocations_total", Help: "Revocations by target (session, carto_token, group) and outcome.",
		}, []string{"target", "outcome"}),
		tokensMinted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenbroker_tokens_minted_total", Help: "CARTO tokens created by this replica (cold misses and refreshes).",
		}),
	}
	m.gateway = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenbroker_gateway_requests_total", Help: "CARTO gateway requests by API (maps, sql; empty for an unknown route) and outcome: rewritten (bound to the caller's group and sent as the literal grant), passed (sent as it came, for CARTO to judge), refused (a bound parameter not the caller's: 403), unauthenticated (401), invalid, unavailable.",
	}, []string{"api", "outcome"})
	m.gatewayCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenbroker_gateway_instantiations_total", Help: "Map instantiations through the CARTO gateway by how they were answered: hit (cached), shared (an identical call in flight), miss (sent to CARTO).",
	}, []string{"result"})
	m.queryResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenbroker_query_results_total", Help: "Named-query answers by how they were made: hit (the result cache), shared (an identical run in flight), miss (run at CARTO).",
	}, []string{"result"})
	m.queryEvicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenbroker_query_cache_evictions_total", Help: "Named-query results evicted from the result cache to make room (QUERY_CACHE_BYTES).",
	})
	m.queryLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tokenbroker_query_upstream_seconds", Help: "Latency of named-query runs at CARTO, by API (sql, maps).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"api"})
	m.queryRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenbroker_query_upstream_total", Help: "Named-query runs at CARTO, by API and outcome (ok, error).",
	}, []string{"api", "outcome"})
	reg.MustRegister(m.queryResults, m.queryEvicted, m.queryLatency, m.queryRuns)
	m.gatewaySeries, m.cacheSeries = map[[2]string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, api := range []string{"", "maps", "sql"} {
		for _, o := range []string{"rewritten", "passed", "refused", "unauthenticated", "invalid", "unavailable"} {
			m.gatewaySeries[[2]string{api, o}] = m.gateway.WithLabelValues(api, o)
		}
	}
	for _, r := range []string{"hit", "shared", "miss"} {
		m.cacheSeries[r] = m.gatewayCache.WithLabelValues(r)
	}
	m.hits, m.mints = m.issuances.WithLabelValues("hit"), m.issuances.WithLabelValues("mint")
	reg.MustRegister(m.GRPC, m.issuances, m.refreshes, m.cartoCalls, m.cartoLatency, m.logins, m.revocations, m.tokensMinted, m.gateway, m.gatewayCache,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if g.LiveTokens != nil {
		reg.MustRegister(gaugeFunc("tokenbroker_live_tokens", "Unexpired CARTO tokens the broker holds (all replicas, from the store).", func(ctx context.Context) (float64, error) {
			n, err := g.LiveTokens(ctx)
			return float64(n), err
		}))
		if g.MaxLiveTokens > 0 {
			reg.MustRegister(gaugeFunc("tokenbroker_live_tokens_headroom", "Live CARTO tokens that can still be minted before MAX_LIVE_TOKENS.", func(ctx context.Context) (float64, error) {
				n, err := g.LiveTokens(ctx)
				return float64(g.MaxLiveTokens - n), err
			}))
		}
	}
	if g.MintsThisHour != nil && g.MaxMintsPerHour > 0 {
		reg.MustRegister(gaugeFunc("tokenbroker_mints_headroom", "Token creations still allowed this hour before MAX_MINTS_PER_HOUR.", func(ctx context.Context) (float64, error) {
			n, err := g.MintsThisHour(ctx)
			return float64(int64(g.MaxMintsPerHour) - n), err
		}))
	}
	return m
}

// gaugeFunc is a gauge read at scrape time, within 2 s; a failed read
// reports nothing rather than a wrong value.
func gaugeFunc(name, help string, read func(context.Context) (float64, error)) prometheus.Collector {
	return &scrapeGauge{desc: prometheus.NewDesc(name, help, nil, nil), read: read}
}

type scrapeGauge struct {
	desc *prometheus.Desc
	read func(context.Context) (float64, error)
}

func (g *scrapeGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *scrapeGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if v, err := g.read(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v)
	}
}

// Issued counts a CARTO token handed out.
func (m *Metrics) Issued(minted bool) {
	if minted {
		m.mints.Inc()
		return
	}
	m.hits.Inc()
}

// QueryResult counts how a named query was answered.
func (m *Metrics) QueryResult(how string) { m.queryResults.WithLabelValues(how).Inc() }

// QueryUpstream counts a named-query run at CARTO and its latency.
func (m *Metrics) QueryUpstream(api string, d time.Duration, ok bool) {
	m.queryLatency.WithLabelValues(api).Observe(d.Seconds())
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	m.queryRuns.WithLabelValues(api, outcome).Inc()
}

// QueryEvicted counts a result evicted from the result cache.
func (m *Metrics) QueryEvicted() { m.queryEvicted.Inc() }

// WatchQueryCache exports what the result cache holds, read at scrape time.
func (m *Metrics) WatchQueryCache(size func() (entries, bytes int)) {
	m.Registry.MustRegister(
		gaugeFunc("tokenbroker_query_cache_bytes", "Bytes the named-query result cache holds (of QUERY_CACHE_BYTES).", func(context.Context) (float64, error) {
			_, b := size()
			return float64(b), nil
		}),
		gaugeFunc("tokenbroker_query_cache_entries", "Results the named-query result cache holds.", func(context.Context) (float64, error) {
			n, _ := size()
			return float64(n), nil
		}))
}

// GatewayRequest counts a CARTO gateway request.
func (m *Metrics) GatewayRequest(api, outcome string) {
	if c, ok := m.gatewaySeries[[2]string{api, outcome}]; ok {
		c.Inc()
		return
	}
	m.gateway.WithLabelValues(api, outcome).Inc()
}

// GatewayCache counts how a map instantiation was answered.
func (m *Metrics) GatewayCache(result string) {
	if c, ok := m.cacheSeries[result]; ok {
		c.Inc()
		return
	}
	m.gatewayCache.WithLabelValues(result).Inc()
}

// Minted counts a token created at CARTO by this replica.
func (m *Metrics) Minted() { m.tokensMinted.Inc() }

// Refreshed counts a background refresh.
func (m *Metrics) Refreshed(ok bool) {
	if ok {
		m.refreshes.WithLabelValues("ok").Inc()
		return
	}
	m.refreshes.WithLabelValues("failed").Inc()
}

// CartoCall counts one attempt of a call to CARTO.
func (m *Metrics) CartoCall(endpoint, outcome string, d time.Duration) {
	m.cartoCalls.WithLabelValues(endpoint, outcome).Inc()
	m.cartoLatency.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Login counts a login attempt.
func (m *Metrics) Login(outcome string) { m.logins.WithLabelValues(outcome).Inc() }

// Revoked counts a revocation.
func (m *Metrics) Revoked(target, outcome string) {
	m.revocations.WithLabelValues(target, outcome).Inc()
}
