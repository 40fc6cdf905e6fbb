package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/flightcache"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

var (
	// ErrNoSuchQuery reports a named query that is not configured.
	ErrNoSuchQuery = errors.New("no such query")
	// ErrResultTooLarge reports a result past its query's max_rows or
	// max_bytes (the QueryRunner refuses it, naming the limit).
	ErrResultTooLarge = errors.New("result too large")
	// ErrQueryRejected reports CARTO refusing a named query (a bad grant,
	// bad SQL): the operator's configuration, not the caller's doing.
	ErrQueryRejected = errors.New("CARTO rejected a named query")
)

// DataQuery is one run of SQL at CARTO, with a token of the broker's own.
type DataQuery struct {
	Token      string
	Connection string
	SQL        string
	Params     map[string]any // queryParameters; nil for none
	MaxRows    int
	MaxBytes   int64
}

// Column is a column of a result: its name and CARTO's type for it.
type Column struct{ Name, Type string }

// Rows is a query's result through the SQL API.
type Rows struct {
	Columns []Column
	Rows    []map[string]any
	Bytes   int64 // the size of CARTO's answer
	// Memo keeps what the API builds from these rows, once for every caller
	// a cached result is served to (set by the broker).
	Memo *Memo
}

// GeoJSON is a query's FeatureCollection through the Maps API.
type GeoJSON struct {
	Body []byte
	Memo *Memo // as Rows'
}

// Memo keeps one value built from a result, once: every caller a result is
// served to gets the same. What it holds must not be changed.
type Memo struct {
	once sync.Once
	val  any
	err  error
}

// Do returns the value build made, building it on the first call.
func (m *Memo) Do(build func() (any, error)) (any, error) {
	m.once.Do(func() { m.val, m.err = build() })
	return m.val, m.err
}

// QueryRunner runs SQL at CARTO (carto.Client, through an adapter). A token
// CARTO refuses (deleted or expired there) is reported as ErrTokenRefused.
type QueryRunner interface {
	Rows(ctx context.Context, q DataQuery) (Rows, error)
	GeoJSON(ctx context.Context, q DataQuery) ([]byte, error)
}

// ErrTokenRefused reports a query token CARTO no longer accepts: the broker
// drops it and runs the query once more with a new one.
var ErrTokenRefused = errors.New("CARTO refused the query token")

// Queries lists the named queries p may run (nil p: an anonymous caller).
func (b *Broker) Queries(p *auth.Principal) []*namedquery.Query {
	if b.cfg.Queries == nil {
		return nil
	}
	return b.cfg.Queries.Visible(callerOf(p))
}

// QueryRows runs the named query through the SQL API for p (nil: an
// anonymous caller, from the client address addr) with the values it
// supplied.
func (b *Broker) QueryRows(ctx context.Context, p *auth.Principal, addr, name string, supplied map[string]string) (Rows, error) {
	res, err := b.runQuery(ctx, p, addr, name, supplied, namedquery.APISQL)
	rows := res.rows
	rows.Memo = res.memo
	return rows, err
}

// QueryGeoJSON runs the named query through the Maps API and returns its
// FeatureCollection.
func (b *Broker) QueryGeoJSON(ctx context.Context, p *auth.Principal, addr, name string, supplied map[string]string) (GeoJSON, error) {
	res, err := b.runQuery(ctx, p, addr, name, supplied, namedquery.APIMaps)
	return GeoJSON{Body: res.geojson, Memo: res.memo}, err
}

// result is a named query's answer through one API, as it is kept.
type result struct {
	rows    Rows
	geojson []byte
	size    int
	memo    *Memo // for the API's answer built from it
}

// QueryObserver is told how named queries are answered, for metrics.
type QueryObserver interface {
	// QueryResult: from the result cache (hit), shared with an identical
	// run in flight (shared), or run at CARTO (miss).
	QueryResult(how string)
	// QueryUpstream: one run at CARTO through api, and how long it took.
	QueryUpstream(api string, d time.Duration, ok bool)
}

// runQuery checks that p may run the query through api and binds its
// parameters; then answers from the result cache, or runs it at CARTO with
// the audience's query token (a token CARTO refuses is evicted and the
// query run once more with a new one).
func (b *Broker) runQuery(ctx context.Context, p *auth.Principal, addr, name string, supplied map[string]string, api string) (result, error) {
	var q *namedquery.Query
	ok := false
	if b.cfg.Queries != nil {
		q, ok = b.cfg.Queries.Get(name)
	}
	if !ok {
		return result{}, refusal.Newf(ErrNoSuchQuery, "no query is named %q", refusal.Echo(name))
	}
	c := callerOf(p)
	if !q.Allows(c) {
		return result{}, refusal.Newf(ErrPermissionDenied, "query %s is not open to the caller's group", q.Name)
	}
	if !slices.Contains(q.APIs, api) {
		return result{}, refusal.Newf(ErrInvalidArgument, "query %s is not served through the %s API (it is through: %s)", q.Name, api, strings.Join(q.APIs, ", "))
	}
	r, err := q.Bind(c, supplied)
	if err != nil {
		return result{}, err
	}
	if p == nil {
		// Without credentials, each address runs a bounded number.
		if err := b.public.allow(addr, b.cfg.Now()); err != nil {
			return result{}, err
		}
	}
	audience := namedquery.AudienceKey(c)
	if q.Public {
		audience = namedquery.AudienceKey(namedquery.Caller{})
	}
	pol, err := b.cfg.Queries.Policy(audience)
	if err != nil {
		return result{}, fmt.Errorf("query token policy: %w", err)
	}
	run := func(ctx context.Context) (result, error) {
		return b.runAtCarto(ctx, q, api, r, store.Key{Group: audience, PolicyHash: pol.Hash}, pol.TokenTTL)
	}
	if q.CacheTTL == 0 || b.results == nil {
		return run(ctx)
	}
	// Kept per API, the audience's grants (their hash: a policy change is
	// another key) and every value after binding (the group's included),
	// tagged with the audience so a revocation of the group drops them.
	key := api + "\x00" + pol.Hash + "\x00" + r.Key
	res, how, err := b.results.Get(ctx, key, audience, func(ctx context.Context) (result, flightcache.Keep, error) {
		res, err := run(ctx)
		return res, flightcache.Keep{TTL: q.CacheTTL, Size: res.size}, err
	})
	if b.cfg.QueryObserver != nil {
		b.cfg.QueryObserver.QueryResult(string(how))
	}
	return res, err
}

// runAtCarto runs a bound query at CARTO with the token of key.
func (b *Broker) runAtCarto(ctx context.Context, q *namedquery.Query, api string, r namedquery.Run, key store.Key, ttl time.Duration) (result, error) {
	maxRows, maxBytes := q.Limits()
	for attempt := 0; ; attempt++ {
		e, _, err := b.cfg.Cache.Get(ctx, key, ttl)
		if err != nil {
			return result{}, err
		}
		dq := DataQuery{Token: e.Token, Connection: q.Connection, SQL: q.SQL, Params: r.Params, MaxRows: maxRows, MaxBytes: maxBytes}
		start := time.Now()
		var res result
		if api == namedquery.APISQL {
			res.rows, err = b.cfg.Runner.Rows(ctx, dq)
			res.size = int(res.rows.Bytes)
		} else {
			res.geojson, err = b.cfg.Runner.GeoJSON(ctx, dq)
			res.size = len(res.geojson)
		}
		// What the API builds from the result is kept with it (its size
		// counts the answer's bytes once; the built form is about as big).
		res.memo = &Memo{}
		if b.cfg.QueryObserver != nil {
			b.cfg.QueryObserver.QueryUpstream(api, time.Since(start), err == nil)
		}
		if !errors.Is(err, ErrTokenRefused) || attempt > 0 {
			return res, err
		}
		// CARTO no longer knows the token (deleted there, or expired early):
		// forget it, so the next Get mints one.
		b.cfg.Logger.WarnContext(ctx, "CARTO refused a query token; minting a new one", "audience", namedquery.DescribeKey(key.Group))
		if err := b.cfg.Cache.Evict(ctx, e); err != nil {
			return result{}, fmt.Errorf("drop the refused query token: %w", err)
		}
	}
}

// QueryCacheSize is what the result cache holds: answers and bytes.
func (b *Broker) QueryCacheSize() (entries, bytes int) {
	if b.results == nil {
		return 0, 0
	}
	return b.results.Size()
}

// callerOf is who runs a query: p's group and user, or no one.
func callerOf(p *auth.Principal) namedquery.Caller {
	if p == nil {
		return namedquery.Caller{}
	}
	return namedquery.Caller{Group: p.Group, User: p.Subject, Claims: p.Claims}
}
