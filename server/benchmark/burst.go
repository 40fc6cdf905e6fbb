package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
)

type burstResult struct {
	first     time.Duration
	lat       result
	creations int64
	oauth     int64
}

// coldBurst starts replicas on one Redis and one emulator, then has
// o.burst callers of one group ask at once, with nothing cached.
func coldBurst(ctx context.Context, o options) (burstResult, error) {
	dir, err := os.MkdirTemp("", "tokenbroker-burst-")
	if err != nil {
		return burstResult{}, err
	}
	defer os.RemoveAll(dir)
	rs, err := redistest.New(dir)
	if err != nil {
		return burstResult{}, fmt.Errorf("redis-server: %w", err)
	}
	defer rs.Kill()
	emu, err := brokertest.NewEmulator()
	if err != nil {
		return burstResult{}, err
	}
	defer emu.Close()
	emu.SetFaults(cartosim.Faults{Latency: o.latency})

	// Replicas configured as a deployment (the demo users), on one Redis.
	var clients []tokenbrokerv1.TokenBrokerClient
	for range o.replicas {
		b, stop, err := startBroker(brokertest.DemoUsers(), brokertest.WithEmulator(emu),
			brokertest.Env(map[string]string{"REDIS_URL": rs.URL, "RECONCILE_INTERVAL": "0"}))
		if err != nil {
			return burstResult{}, err
		}
		defer stop()
		// A deployment gets its OAuth token at start (App.Run warms it);
		// the burst is on a cold token cache, not a just-booted process.
		if err := b.App.Warm(ctx); err != nil {
			return burstResult{}, fmt.Errorf("warm: %w", err)
		}
		conns, err := dial(b.GRPCAddr, 1)
		if err != nil {
			return burstResult{}, err
		}
		defer closeAll(conns)
		clients = append(clients, tokenbrokerv1.NewTokenBrokerClient(conns[0]))
	}
	lr, err := clients[0].Login(ctx, &tokenbrokerv1.LoginRequest{Username: "user.boston@acme.com", Password: "boston"})
	if err != nil {
		return burstResult{}, fmt.Errorf("login: %w", err)
	}
	mdCtx := metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+lr.GetToken()))
	before := emu.Stats()

	var (
		wg    sync.WaitGroup
		gate  = make(chan struct{})
		first atomic.Int64
		mu    sync.Mutex
		out   = result{name: "cold burst", callers: o.burst}
	)
	start := time.Now()
	for i := range o.burst {
		wg.Go(func() {
			<-gate
			t0 := time.Now()
			_, err := clients[i%len(clients)].IssueCartoToken(mdCtx, &tokenbrokerv1.IssueCartoTokenRequest{})
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.errs++
				return
			}
			first.CompareAndSwap(0, int64(time.Since(start)))
			out.lat = append(out.lat, d)
		})
	}
	start = time.Now()
	close(gate)
	wg.Wait()
	out.took = time.Since(start)
	after := emu.Stats()
	return burstResult{first: time.Duration(first.Load()), lat: out, creations: after.TokensCreated - before.TokensCreated, oauth: after.OAuthRequests}, nil
}
