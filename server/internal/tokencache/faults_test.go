package tokencache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/redisstore"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// emulatedCarto is the CARTO emulator on loopback, minted at through the
// broker's real CARTO client.
type emulatedCarto struct {
	sim    *cartosim.Sim
	client *carto.Client
}

func startCarto(t *testing.T) emulatedCarto {
	t.Helper()
	id, secret := cartosim.NewClient()
	sim, err := cartosim.New(cartosim.Config{ClientID: id, ClientSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := carto.New(carto.Config{
		BaseURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: id, ClientSecret: secret,
		BreakerThreshold: -1, // the tests count every creation attempt
	})
	if err != nil {
		t.Fatal(err)
	}
	return emulatedCarto{sim: sim, client: client}
}

// Mint and Delete make emulatedCarto a tokencache.Upstream: each key gets a
// token reading its group's stores.
func (e emulatedCarto) Mint(ctx context.Context, key store.Key, expiresAt time.Time) (string, error) {
	tok, err := e.client.CreateToken(ctx, carto.CreateTokenRequest{
		Grants: []carto.Grant{{
			ConnectionName: "carto_dw",
			Source:         "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = '" + key.Group + "'",
		}},
		AllowedAPIs: []string{"maps"},
		ExpiresAt:   expiresAt,
		Name:        "tokenbroker/test/" + key.Group,
	})
	return tok.Token, err
}

func (e emulatedCarto) Delete(ctx context.Context, token string) error {
	return e.client.DeleteToken(ctx, token)
}

// replicaSets are the ways the broker runs: one process on its own store,
// and three replicas sharing one Redis.
var replicaSets = []struct {
	name string
	open func(t *testing.T, cfg tokencache.Config) []*tokencache.Cache
}{
	{"memory", func(t *testing.T, cfg tokencache.Config) []*tokencache.Cache {
		cfg.Store = memstore.New(memstore.Config{})
		return []*tokencache.Cache{tokencache.New(cfg)}
	}},
	{"redis, 3 replicas", func(t *testing.T, cfg tokencache.Config) []*tokencache.Cache {
		srv := redistest.Start(t)
		out := make([]*tokencache.Cache, 3)
		for i := range out {
			out[i] = redisReplica(t, srv.URL, cfg)
		}
		return out
	}},
}

// redisReplica is a Cache on its own connection to a shared Redis, following
// the store's feed until the test ends.
func redisReplica(t *testing.T, url string, cfg tokencache.Config) *tokencache.Cache {
	t.Helper()
	client, err := redisstore.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	st, err := redisstore.Open(t.Context(), redisstore.Config{Client: client, Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store = st
	// The tests are about the quota guards, not about failing closed on a
	// loaded machine whose feed is late.
	cfg.MaxStaleness = time.Minute
	c := tokencache.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("feed: %v", err)
		}
	})
	if err := c.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer scancel()
	if err := c.WaitSynced(sctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func groupKey(g string) store.Key {
	return store.Key{Group: g, PolicyHash: "0123456789abcdef0123456789abcdef"}
}

// coldAtOnce asks for the tokens of n groups none of which has one, all at
// the same moment, spread over the replicas; it returns how many were
// served and how many refused by a quota guard.
func coldAtOnce(t *testing.T, caches []*tokencache.Cache, n int) (served int, refused []error) {
	t.Helper()
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, _, errs[i] = caches[i%len(caches)].Get(t.Context(), groupKey(fmt.Sprint("G", i)), time.Hour)
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		switch {
		case err == nil:
			served++
		case errors.Is(err, tokencache.ErrQuotaExceeded):
			refused = append(refused, err)
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	return served, refused
}

// Finding 11: 5 cold groups arriving together with a ceiling of 3 all minted,
// each checking the ceiling under its own key's lock; the live-token ceiling
// and the hourly cap must hold however many mints run at once, on however
// many replicas.
func TestFaultColdGroupsTogetherPassTheCeilings(t *testing.T) {
	guards := []struct {
		name  string
		set   func(*tokencache.Config)
		limit string
	}{
		{"MAX_LIVE_TOKENS=3", func(c *tokencache.Config) { c.MaxLiveTokens = 3 }, "limit of 3 live CARTO tokens"},
		{"MAX_MINTS_PER_HOUR=3", func(c *tokencache.Config) { c.MaxMints = 3 }, "limit of 3 CARTO token creations"},
	}
	for _, rs := range replicaSets {
		for _, g := range guards {
			t.Run(rs.name+"/"+g.name, func(t *testing.T) {
				emu := startCarto(t)
				// Every mint waits on CARTO, so all five check the guards
				// before any token is stored.
				emu.sim.SetFaults(cartosim.Faults{Latency: 100 * time.Millisecond, Scope: cartosim.ScopeTokens})
				cfg := tokencache.Config{Upstream: emu, WaitPoll: time.Millisecond}
				g.set(&cfg)
				caches := rs.open(t, cfg)
				served, refused := coldAtOnce(t, caches, 5)
				created := emu.sim.Stats().TokensCreated
				t.Logf("5 cold groups at once: %d served, %d refused, %d tokens created at the emulator", served, len(refused), created)
				if served != 3 || len(refused) != 2 || created != 3 {
					t.Fatalf("%d served, %d refused (%v), %d created at CARTO; want 3, 2 and 3", served, len(refused), refused, created)
				}
				_, _, err := caches[0].Get(t.Context(), groupKey("late"), time.Hour)
				if !errors.Is(err, tokencache.ErrQuotaExceeded) || !bytes.Contains([]byte(err.Error()), []byte(g.limit)) {
					t.Fatalf("a sixth group: %v, want the refusal naming %q", err, g.limit)
				}
			})
		}
	}
}

// Finding 11: a mint that fails at CARTO gives its reservation back (its
// live slot and its place in the hourly count), so failures do not eat the
// ceilings: once CARTO is back, the full ceiling can still be minted.
func TestFaultFailedMintGivesItsReservationBack(t *testing.T) {
	for _, rs := range replicaSets {
		t.Run(rs.name, func(t *testing.T) {
			emu := startCarto(t)
			caches := rs.open(t, tokencache.Config{Upstream: emu, WaitPoll: time.Millisecond, MaxLiveTokens: 3, MaxMints: 3, MaxGroupMints: 3})
			emu.sim.SetFaults(cartosim.Faults{ErrorRate: 1, Scope: cartosim.ScopeTokens})
			for i := range 3 {
				_, _, err := caches[i%len(caches)].Get(t.Context(), groupKey("G0"), time.Hour)
				if err == nil || errors.Is(err, tokencache.ErrQuotaExceeded) {
					t.Fatalf("mint %d while CARTO fails: %v, want CARTO's error", i, err)
				}
			}
			emu.sim.SetFaults(cartosim.Faults{})
			if served, refused := coldAtOnce(t, caches, 3); served != 3 || len(refused) != 0 {
				t.Fatalf("after 3 failed mints, %d of 3 served, refused %v: the failures kept their reservations", served, refused)
			}
			if n := emu.sim.Stats().TokensCreated; n != 3 {
				t.Fatalf("%d tokens created, want 3", n)
			}
		})
	}
}
