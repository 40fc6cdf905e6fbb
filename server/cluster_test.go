package main

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
)

func startReplicas(t *testing.T, n int, env []string) []*process {
	t.Helper()
	out := make([]*process, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = startProcess(t, env) })
	}
	wg.Wait()
	return out
}

// Log lines of a replica at debug level (LOG_LEVEL=debug): it applied an
// event of the shared store's feed.
const (
	revocationApplied = "session revocation applied from the shared store"
	evictionApplied   = "token eviction applied from the shared store"
)

// awaitLog waits until p has logged msg (within 15 s), and returns how long
// after since that was.
func awaitLog(t *testing.T, p *process, msg string, since time.Time) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := p.Logs.Await(ctx, msg); err != nil {
		t.Fatalf("replica %s: %v", p.GRPCAddr, err)
	}
	return time.Since(since)
}

// waitRefused waits until p has applied the revocation of session that
// another replica made, checks that p refuses the session, and returns how
// long after since that was. (Its log is written every 100 ms: the time is
// that much late at most.)
func waitRefused(t *testing.T, p *process, session string, since time.Time) time.Duration {
	t.Helper()
	d := awaitLog(t, p, `"msg":"`+revocationApplied+`"`, since)
	if _, err := p.issue(session); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("replica %s has the revocation, yet answers the revoked session with %v", p.GRPCAddr, err)
	}
	return d
}

// Three broker processes on one Redis: 1,000 concurrent cold requests for one
// group make one token creation and one OAuth request at CARTO; a
// revocation on one replica is refused by the others within a second.
func TestThreeReplicasOnOneRedis(t *testing.T) {
	rs := redistest.Start(t)
	emu := brokertest.StartEmulator(t)
	emu.SetFaults(cartosim.Faults{Latency: 50 * time.Millisecond})
	cfg := filepath.Join(t.TempDir(), "tokenbroker.yaml")
	writeFile(t, cfg, usersYAML("maps"))
	replicas := startReplicas(t, 3, brokerEnv(t, emu, cfg, "REDIS_URL="+rs.URL, "LOG_LEVEL=debug"))
	session := replicas[0].login(t)

	const callers = 1000
	tokens := make([]string, callers)
	var firstDone atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			r, err := replicas[i%3].issue(session)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			firstDone.CompareAndSwap(0, int64(time.Since(start)))
			tokens[i] = r.GetToken()
		})
	}
	wg.Wait()
	all := time.Since(start)
	stats := emu.Stats()
	t.Logf("%d concurrent cold issues over 3 replicas: %d token creations, %d OAuth requests at the emulator; first answer after %v, all after %v",
		callers, stats.TokensCreated, stats.OAuthRequests, time.Duration(firstDone.Load()).Round(time.Millisecond), all.Round(time.Millisecond))
	for i := range tokens {
		if tokens[i] != tokens[0] {
			t.Fatalf("callers got different tokens: %q vs %q", tokens[i], tokens[0])
		}
	}
	if stats.TokensCreated != 1 || stats.OAuthRequests != 1 {
		t.Fatalf("emulator stats %+v: want exactly 1 creation and 1 OAuth request", stats)
	}

	// A session revoked on replica 0 is refused by replicas 1 and 2.
	s2 := replicas[1].login(t)
	for _, r := range replicas {
		if _, err := r.issue(s2); err != nil {
			t.Fatal(err)
		}
	}
	revokedAt := time.Now()
	if err := replicas[0].revoke(s2, logout()); err != nil {
		t.Fatal(err)
	}
	d1, d2 := waitRefused(t, replicas[1], s2, revokedAt), waitRefused(t, replicas[2], s2, revokedAt)
	t.Logf("session revoked on replica 0: refused by replica 1 after %v, replica 2 after %v", d1.Round(time.Millisecond), d2.Round(time.Millisecond))
	if d1 > time.Second || d2 > time.Second {
		t.Fatalf("revocation took %v / %v to reach the other replicas, want under 1s", d1, d2)
	}

	// A CARTO token revoked on replica 0 is no longer served by the others.
	emu.SetFaults(cartosim.Faults{})
	revokedAt = time.Now()
	if err := replicas[0].revoke(session, revokeCarto(tokens[0])); err != nil {
		t.Fatal(err)
	}
	for _, r := range replicas[1:] {
		if d := awaitLog(t, r, `"msg":"`+evictionApplied+`"`, revokedAt); d > time.Second {
			t.Fatalf("replica %s still serves the revoked CARTO token after 1s", r.GRPCAddr)
		}
		got, err := r.issue(session)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetToken() == tokens[0] {
			t.Fatalf("replica %s evicted the revoked CARTO token, yet serves it", r.GRPCAddr)
		}
	}
	t.Logf("CARTO token revoked on replica 0: replicas 1 and 2 serve a new one after %v", time.Since(revokedAt).Round(time.Millisecond))
}

// Redis is killed while two replicas serve: nothing crashes, no revoked
// session is ever accepted, requests fail closed (UNAVAILABLE) once the
// replicas cannot vouch for their views, and service resumes by itself when
// Redis is back, even empty: the replicas write back the revocations it lost.
func TestRedisKilledMidLoad(t *testing.T) {
	rs := redistest.Start(t)
	emu := brokertest.StartEmulator(t)
	cfg := filepath.Join(t.TempDir(), "tokenbroker.yaml")
	writeFile(t, cfg, usersYAML("maps"))
	env := brokerEnv(t, emu, cfg, "REDIS_URL="+rs.URL, "LOG_LEVEL=debug")
	replicas := startReplicas(t, 2, env)
	good, revoked := replicas[0].login(t), replicas[0].login(t)
	for _, r := range replicas {
		if _, err := r.issue(good); err != nil {
			t.Fatal(err)
		}
	}
	if err := replicas[0].revoke(revoked, logout()); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, replicas[1], revoked, time.Now())

	// Callers load both replicas, without pause, from before Redis is
	// killed until both serve again. loaded: every caller has had answers;
	// failedClosed[i]: replica i answered UNAVAILABLE.
	var ok, unavailable, other, revokedAccepted atomic.Int64
	stop := make(chan struct{})
	var wg, loaded sync.WaitGroup
	failedClosed := []chan struct{}{make(chan struct{}), make(chan struct{})}
	closeOnce := []func(){sync.OnceFunc(func() { close(failedClosed[0]) }), sync.OnceFunc(func() { close(failedClosed[1]) })}
	loaded.Add(8)
	for i := range 8 {
		wg.Go(func() {
			r := replicas[i%2]
			answered := sync.OnceFunc(loaded.Done)
			defer answered()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := r.issue(good)
				switch status.Code(err) {
				case codes.OK:
					ok.Add(1)
				case codes.Unavailable:
					unavailable.Add(1)
					closeOnce[i%2]()
				default:
					other.Add(1)
					t.Errorf("during the outage: %v", err)
				}
				if _, err := r.issue(revoked); err == nil {
					revokedAccepted.Add(1)
				}
				answered()
			}
		})
	}
	loaded.Wait()
	rs.Kill()
	killedAt := time.Now()
	// The outage lasts until each replica fails closed: longer than it
	// trusts its views alone.
	outage, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for i, c := range failedClosed {
		select {
		case <-c:
		case <-outage.Done():
			t.Fatalf("replica %d: no request failed closed within 15 s of the outage", i)
		}
	}
	okDuring := ok.Load()
	rs.Restart(t) // back, and empty: it kept nothing on disk
	restartedAt := time.Now()
	for _, r := range replicas {
		awaitLog(t, r, "the shared store answers again", restartedAt)
		if _, err := r.issue(good); err != nil {
			t.Fatalf("replica %s is in sync with Redis again, yet: %v", r.GRPCAddr, err)
		}
	}
	recovered := time.Since(restartedAt)
	close(stop)
	wg.Wait()

	t.Logf("Redis killed for %v: %d requests served, %d UNAVAILABLE, %d other; revoked session accepted %d times; recovered %v after Redis returned",
		restartedAt.Sub(killedAt).Round(time.Millisecond), okDuring, unavailable.Load(), other.Load(), revokedAccepted.Load(), recovered.Round(time.Millisecond))
	if revokedAccepted.Load() != 0 {
		t.Fatalf("a revoked session was accepted %d times", revokedAccepted.Load())
	}
	if unavailable.Load() == 0 {
		t.Fatal("no request failed closed during a 3 s outage")
	}
	for _, r := range replicas {
		if !r.alive() {
			t.Fatalf("replica %s died", r.GRPCAddr)
		}
		if _, err := r.issue(revoked); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("after recovery, the revoked session: %v", err)
		}
	}
	// A replica started after Redis came back empty learns the revocation
	// too: the others wrote it back.
	late := startProcess(t, env)
	if _, err := late.issue(revoked); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a new replica accepts the revoked session: %v", err)
	}
}
