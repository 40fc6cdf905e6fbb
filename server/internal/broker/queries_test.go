package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// numberedCarto mints tok-1, tok-2… and remembers what it was asked.
type numberedCarto struct {
	mu      sync.Mutex
	created []carto.CreateTokenRequest
}

func (f *numberedCarto) CreateToken(_ context.Context, req carto.CreateTokenRequest) (carto.APIToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, req)
	return carto.APIToken{Token: fmt.Sprintf("tok-%d", len(f.created))}, nil
}

func (f *numberedCarto) DeleteToken(context.Context, string) error { return nil }

// refusingRunner refuses the tokens listed, and answers one row otherwise.
type refusingRunner struct {
	refused map[string]bool
	seen    []DataQuery
}

func (r *refusingRunner) Rows(_ context.Context, q DataQuery) (Rows, error) {
	r.seen = append(r.seen, q)
	if r.refused[q.Token] {
		return Rows{}, fmt.Errorf("sql query: %w", ErrTokenRefused)
	}
	return Rows{Columns: []Column{{Name: "city", Type: "string"}}, Rows: []map[string]any{{"city": q.Params["city"]}}}, nil
}

func (r *refusingRunner) GeoJSON(context.Context, DataQuery) ([]byte, error) {
	return nil, errors.New("not used")
}

func TestRunQueryMintsItsOwnTokenAndReplacesARefusedOne(t *testing.T) {
	queries, err := namedquery.NewSet([]namedquery.Query{{
		Name: "mine", Connection: "carto_dw", SQL: "SELECT city FROM t WHERE city = @city", APIs: []string{namedquery.APISQL},
		Groups: []string{namedquery.AllGroups}, Params: []namedquery.Param{{Name: "city", Bind: namedquery.BindGroup}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	up := &numberedCarto{}
	mint := Mintable{Groups: policies(t), Queries: queries}
	b := New(Config{
		Policies: policies(t), Queries: queries,
		Cache: tokencache.New(tokencache.Config{Store: memstore.New(memstore.Config{}),
			Upstream: Upstream{Carto: up, Policies: mint, NamePrefix: TokenNamePrefix("test")}}),
	})
	p := &auth.Principal{Kind: auth.KindUser, Subject: "u", Group: "BOSTON"}

	tests := []struct {
		name    string
		refused map[string]bool
		want    error
		token   string // the token the answer came with
		minted  int    // tokens minted in all, after the step
	}{
		{name: "first run mints the audience's token", token: "tok-1", minted: 1},
		{name: "the next run reuses it", token: "tok-1", minted: 1},
		{name: "a refused token is replaced once", refused: map[string]bool{"tok-1": true}, token: "tok-2", minted: 2},
		{name: "refused twice: an error", refused: map[string]bool{"tok-2": true, "tok-3": true}, want: ErrTokenRefused, minted: 3},
	}
	for _, tt := range tests {
		r := &refusingRunner{refused: tt.refused}
		b.cfg.Runner = r
		rows, err := b.QueryRows(context.Background(), p, "", "mine", nil)
		if tt.want != nil {
			if !errors.Is(err, tt.want) {
				t.Fatalf("%s: %v, want %v", tt.name, err, tt.want)
			}
		} else if err != nil || rows.Rows[0]["city"] != "BOSTON" || r.seen[len(r.seen)-1].Token != tt.token {
			t.Fatalf("%s: %+v, %v; want BOSTON's row with %s", tt.name, rows, err, tt.token)
		}
		if len(up.created) != tt.minted {
			t.Fatalf("%s: %d tokens minted, want %d", tt.name, len(up.created), tt.minted)
		}
	}
	// What was minted: the query's SQL, parameters and all, through its
	// APIs, under a name that tells it from the groups' tokens.
	req := up.created[0]
	if len(req.Grants) != 1 || req.Grants[0].Source != "SELECT city FROM t WHERE city = @city" || strings.Join(req.AllowedAPIs, ",") != "sql" ||
		!strings.HasPrefix(req.Name, "tokenbroker/test/queries/BOSTON/") {
		t.Fatalf("minted %+v", req)
	}
}

// countingRunner answers every run with the caller's city, counting runs;
// each run waits for release when it is set.
type countingRunner struct {
	runs    atomic.Int32
	release chan struct{}
}

func (r *countingRunner) Rows(_ context.Context, q DataQuery) (Rows, error) {
	r.runs.Add(1)
	if r.release != nil {
		<-r.release
	}
	return Rows{Columns: []Column{{Name: "city"}}, Rows: []map[string]any{{"city": q.Params["city"]}}, Bytes: 20}, nil
}

func (r *countingRunner) GeoJSON(context.Context, DataQuery) ([]byte, error) {
	r.runs.Add(1)
	return []byte(`{"type":"FeatureCollection","features":[]}`), nil
}

func TestQueryResultsAreCachedShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		queries, err := namedquery.NewSet([]namedquery.Query{{
			Name: "mine", Connection: "carto_dw", SQL: "SELECT city FROM t WHERE city = @city", APIs: []string{namedquery.APISQL, namedquery.APIMaps},
			Groups: []string{namedquery.AllGroups}, CacheTTL: time.Minute, Params: []namedquery.Param{{Name: "city", Bind: namedquery.BindGroup}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		r := &countingRunner{release: make(chan struct{})}
		b := New(Config{
			Policies: policies(t), Queries: queries, Runner: r, QueryCacheBytes: 1 << 20,
			Cache: tokencache.New(tokencache.Config{Store: memstore.New(memstore.Config{}),
				Upstream: Upstream{Carto: &numberedCarto{}, Policies: Mintable{Groups: policies(t), Queries: queries}}}),
		})
		boston := &auth.Principal{Kind: auth.KindUser, Subject: "u", Group: "BOSTON", Admin: true}
		ny := &auth.Principal{Kind: auth.KindUser, Subject: "v", Group: "NEW YORK"}
		run := func(p *auth.Principal) string {
			rows, err := b.QueryRows(context.Background(), p, "", "mine", nil)
			if err != nil {
				t.Fatal(err)
			}
			return rows.Rows[0]["city"].(string)
		}

		// Twenty identical runs at once: one at CARTO.
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if city := run(boston); city != "BOSTON" {
					t.Errorf("Boston's run answered %s", city)
				}
			})
		}
		synctest.Wait()
		close(r.release)
		wg.Wait()
		if n := r.runs.Load(); n != 1 {
			t.Fatalf("20 identical runs at once made %d at CARTO, want 1", n)
		}
		steps := []struct {
			name string
			do   func()
			p    *auth.Principal
			runs int32 // at CARTO so far
			city string
		}{
			{name: "another group is another result", p: ny, runs: 2, city: "NEW YORK"},
			{name: "within the lifetime: kept", do: func() { time.Sleep(time.Minute - time.Second) }, p: boston, runs: 2, city: "BOSTON"},
			{name: "after it: run again", do: func() { time.Sleep(time.Second) }, p: boston, runs: 3, city: "BOSTON"},
			{name: "the other group's ended too", p: ny, runs: 4, city: "NEW YORK"},
			{name: "the group's tokens revoked: its results dropped", do: func() {
				if _, _, err := b.RevokeGroup(context.Background(), *boston, "BOSTON"); err != nil {
					t.Fatal(err)
				}
			}, p: boston, runs: 5, city: "BOSTON"},
			{name: "another group's results stay", p: ny, runs: 5, city: "NEW YORK"},
		}
		for _, s := range steps {
			if s.do != nil {
				s.do()
			}
			if city := run(s.p); city != s.city || r.runs.Load() != s.runs {
				t.Fatalf("%s: %s with %d runs at CARTO, want %s with %d", s.name, city, r.runs.Load(), s.city, s.runs)
			}
		}
	})
}

// A changed query (its SQL, so its audience's grants) never gets the old
// query's results: they are kept under the grants' hash.
func TestQueryResultsFollowThePolicy(t *testing.T) {
	set := func(sql string) *namedquery.Set {
		s, err := namedquery.NewSet([]namedquery.Query{{
			Name: "mine", Connection: "carto_dw", SQL: sql, APIs: []string{namedquery.APISQL},
			Groups: []string{namedquery.AllGroups}, CacheTTL: time.Hour, Params: []namedquery.Param{{Name: "city", Bind: namedquery.BindGroup}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before, after := set("SELECT city FROM t WHERE city = @city"), set("SELECT city, zip FROM t WHERE city = @city")
	r := &countingRunner{}
	b := New(Config{
		Policies: policies(t), Queries: before, Runner: r, QueryCacheBytes: 1 << 20,
		Cache: tokencache.New(tokencache.Config{Store: memstore.New(memstore.Config{}),
			Upstream: Upstream{Carto: &numberedCarto{}, Policies: Mintable{Groups: policies(t), Queries: before}}}),
	})
	p := &auth.Principal{Kind: auth.KindUser, Subject: "u", Group: "BOSTON"}
	for range 2 {
		if _, err := b.QueryRows(context.Background(), p, "", "mine", nil); err != nil {
			t.Fatal(err)
		}
	}
	b.cfg.Queries = after // as a new configuration would
	b.cfg.Cache = tokencache.New(tokencache.Config{Store: memstore.New(memstore.Config{}),
		Upstream: Upstream{Carto: &numberedCarto{}, Policies: Mintable{Groups: policies(t), Queries: after}}})
	if _, err := b.QueryRows(context.Background(), p, "", "mine", nil); err != nil {
		t.Fatal(err)
	}
	if n := r.runs.Load(); n != 2 {
		t.Fatalf("%d runs at CARTO, want 2: one per version of the query", n)
	}
}
