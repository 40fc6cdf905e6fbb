package redisstore_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/redisstore"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// Finding 12: after a Redis Cluster master failover, running replicas stayed
// unavailable for about 60 s; they must serve again within 5 s of the
// promotion, failing closed meanwhile, whether the master crashed or hangs.
func TestFaultClusterFailover(t *testing.T) {
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			c := redistest.StartCluster(t)
			testFailover(t, "cluster, "+f.name, c.URL, f.within, func() *redistest.Server {
				return c.FailMasterOf(t, "{"+failoverPrefix+"}:events", f.sig)
			})
		})
	}
}

// Finding 12: replicas follow a Sentinel failover within 5 s of the
// promotion, failing closed meanwhile, whether the master crashed or hangs.
func TestFaultSentinelFailover(t *testing.T) {
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			s := redistest.StartSentinel(t)
			testFailover(t, "sentinel, "+f.name, s.URL, f.within, func() *redistest.Server { return s.FailMaster(t, f.sig) })
		})
	}
}

// failures are the ways a master fails, and how soon after the promotion
// the replicas must serve again. A crash closes its connections. A hang
// leaves them open and silent: a call in flight then waits out its deadline
// (1.25 s), and a slot map reload may first ask the hung node (2 s).
var failures = []struct {
	name   string
	sig    syscall.Signal
	within time.Duration
}{
	{"master killed", syscall.SIGKILL, 5 * time.Second},
	{"master hangs", syscall.SIGSTOP, 8 * time.Second},
}

const (
	failoverPrefix = "failover"
	// staleness is the replicas' MaxStaleness: the cache's default.
	staleness = 2 * time.Second
)

// answer is one SessionRevoked call of a replica during a failover.
type answer struct {
	session    string
	start, end time.Time
	revoked    bool
	err        error
}

// failoverReplica is a broker replica's token cache on its own client,
// following the store's feed, asked about sessions s1 and s2 in a loop.
type failoverReplica struct {
	name  string
	cache *tokencache.Cache
	log   *logtest.Buffer

	mu      sync.Mutex
	answers []answer
}

func newFailoverReplica(t *testing.T, name, url string) *failoverReplica {
	t.Helper()
	s, err := redisstore.Open(ctx, redisstore.Config{Client: newClient(t, url), Prefix: failoverPrefix, Key: key})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	r := &failoverReplica{name: name, log: &logtest.Buffer{}}
	r.cache = tokencache.New(tokencache.Config{
		Store: s, MaxStaleness: staleness,
		Logger: slog.New(slog.NewTextHandler(r.log, nil)),
	})
	if err := r.cache.Load(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.cache.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica %s: Run: %v", name, err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := r.cache.WaitSynced(wctx); err != nil {
		t.Fatalf("replica %s never synced: %v", name, err)
	}
	return r
}

// ask asks about both sessions every few ms until stop is closed.
func (r *failoverReplica) ask(stop <-chan struct{}) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, s := range []string{"s1", "s2"} {
			a := answer{session: s, start: time.Now()}
			a.revoked, a.err = r.cache.SessionRevoked(ctx, s)
			a.end = time.Now()
			r.mu.Lock()
			r.answers = append(r.answers, a)
			r.mu.Unlock()
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// first returns the end of the first answer after since that matches.
func (r *failoverReplica) first(since time.Time, match func(answer) bool) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.answers {
		if a.start.After(since) && match(a) {
			return a.end, true
		}
	}
	return time.Time{}, false
}

func (r *failoverReplica) lastErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.answers) - 1; i >= 0; i-- {
		if r.answers[i].err != nil {
			return r.answers[i].err
		}
	}
	return nil
}

// testFailover runs two replicas against url, kills the master with kill
// (which returns the replica that takes over) and checks that both
// replicas fail closed until the promotion and serve again within
// recoverWithin of it, never with a stale view of revoked sessions: s1,
// revoked before the failover, and s2, revoked on the new master.
func testFailover(t *testing.T, kind, url string, recoverWithin time.Duration, kill func() *redistest.Server) {
	replicas := []*failoverReplica{newFailoverReplica(t, "a", url), newFailoverReplica(t, "b", url)}
	// Whole ms, as the store keeps them: a replica's resync then finds the
	// store's revocation equal to its own, unless the failover lost it.
	until := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := replicas[0].cache.RevokeSession(ctx, "s1", until); err != nil {
		t.Fatal(err)
	}
	for _, r := range replicas {
		waitUntil(t, 3*time.Second, "replica "+r.name+" sees s1 revoked", func() bool {
			revoked, err := r.cache.SessionRevoked(ctx, "s1")
			return err == nil && revoked
		})
	}

	stop := make(chan struct{})
	var asking sync.WaitGroup
	for _, r := range replicas {
		asking.Go(func() { r.ask(stop) })
	}
	stopAsking := sync.OnceFunc(func() { close(stop); asking.Wait() })
	defer stopAsking()

	successor := kill()
	killed := time.Now()
	promoted := successor.WaitMaster(t, 30*time.Second)
	t.Logf("%s: replica promoted %v after the kill", kind, promoted.Sub(killed).Round(time.Millisecond))

	written := revokeOnNewMaster(t, url)
	t.Logf("%s: s2 revoked on the new master %v after the promotion", kind, written.Sub(promoted).Round(time.Millisecond))

	for _, r := range replicas {
		// It serves again once it answers after having failed closed.
		var back time.Time
		waitUntil(t, time.Until(promoted.Add(recoverWithin)), "replica "+r.name+" serves again", func() bool {
			failed, ok := r.first(killed, func(a answer) bool { return a.err != nil })
			if ok {
				back, ok = r.first(failed, func(a answer) bool { return a.err == nil })
			}
			return ok
		}, func() string { return "still failing closed: " + errString(r.lastErr()) })
		if d := back.Sub(promoted); d > recoverWithin {
			t.Errorf("replica %s served again %v after the promotion, want at most %v", r.name, d.Round(time.Millisecond), recoverWithin)
		}
		// Once it serves, it must know of s2 within its staleness bound.
		waitUntil(t, time.Until(maxTime(back, written).Add(staleness+time.Second)), "replica "+r.name+" sees s2 revoked", func() bool {
			_, ok := r.first(killed, func(a answer) bool { return a.err == nil && a.session == "s2" && a.revoked })
			return ok
		})
		t.Logf("%s: replica %s served again %v after the promotion (%v after the kill)", kind, r.name,
			back.Sub(promoted).Round(time.Millisecond), back.Sub(killed).Round(time.Millisecond))
	}
	stopAsking()

	for _, r := range replicas {
		r.check(t, kind, killed, promoted, written)
	}
}

// revokeOnNewMaster revokes s2 as soon as the new master takes writes, from a
// client opened after the promotion, and returns when it was written.
func revokeOnNewMaster(t *testing.T, url string) time.Time {
	t.Helper()
	var written time.Time
	waitUntil(t, 15*time.Second, "s2 revoked on the new master", func() bool {
		c, err := redisstore.NewClient(url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := redisstore.Open(ctx, redisstore.Config{Client: c, Prefix: failoverPrefix, Key: key})
		if err != nil {
			return false
		}
		defer s.Close()
		err = s.RevokeSession(ctx, "s2", time.Now().Add(time.Hour))
		written = time.Now()
		return err == nil
	})
	return written
}

// check goes over r's answers and log once the failover is over: it failed
// closed, only with ErrUnavailable, never served a stale view of s1 and s2,
// and logged the outage once and its end.
func (r *failoverReplica) check(t *testing.T, kind string, killed, promoted, written time.Time) {
	t.Helper()
	failedClosed := false
	for _, a := range r.answers {
		switch {
		case a.err != nil:
			if !errors.Is(a.err, store.ErrUnavailable) {
				t.Errorf("replica %s answered %v, want ErrUnavailable", r.name, a.err)
			}
			failedClosed = failedClosed || a.start.After(killed)
		case a.start.After(killed.Add(staleness+100*time.Millisecond)) && a.end.Before(promoted):
			t.Errorf("replica %s answered (%v) %v after the kill, before any promotion: not failing closed",
				r.name, a.revoked, a.start.Sub(killed))
		case a.session == "s1" && !a.revoked:
			t.Errorf("replica %s answered s1 not revoked %v after the kill: stale view", r.name, a.start.Sub(killed))
		case a.session == "s2" && !a.revoked && a.start.After(written.Add(staleness)):
			t.Errorf("replica %s answered s2 not revoked %v after it was revoked: stale view", r.name, a.start.Sub(written))
		}
	}
	if !failedClosed {
		t.Errorf("replica %s never failed closed during the failover", r.name)
	}
	if n := strings.Count(r.log.String(), "waiting for the shared store"); n != 1 {
		t.Errorf("replica %s logged %d times that it waits for the shared store, want once:\n%s", r.name, n, r.log)
	}
	t.Logf("%s: replica %s logged:\n%s", kind, r.name, strings.TrimSpace(r.log.String()))
	if strings.Contains(r.log.String(), "lost session revocations") {
		t.Errorf("replica %s found that the failover lost a revocation:\n%s", r.name, r.log)
	}
	if !strings.Contains(r.log.String(), "the shared store answers again") {
		t.Errorf("replica %s did not log that the shared store answers again:\n%s", r.name, r.log)
	}
}

// waitUntil checks cond every 10 ms until it holds, failing t after within
// (with the optional detail's description). What the failover tests wait
// for happens in redis-server processes and in the replicas' views, which
// signal nothing to the test: a ticker paces the checks of that observable
// state; nothing sleeps for a guessed time.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			for _, d := range detail {
				msg = ": " + d()
			}
			t.Fatalf("%s: not within %v%s", what, within.Round(time.Millisecond), msg)
		}
		<-tick.C
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
