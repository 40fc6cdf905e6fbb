// Package storetest is the conformance suite of store.Store, in the shape of
// Dex's storage/conformance: one entry point, Run, that every implementation
// calls from its tests, and a named sub-test per behaviour, so that every
// store keeps the same contract. A Harness says what the store can do; a
// behaviour it cannot have is skipped, saying why.
package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Harness describes an implementation to the suite.
type Harness struct {
	// NewBackend returns a fresh, empty place to keep data: a file path, a
	// key prefix; whatever Open understands.
	NewBackend func(t *testing.T) string
	// Open opens a store on backend, sealing with key (32 bytes) and
	// reading time from now (the store's Config.Now). The suite closes what
	// it opens.
	Open func(t *testing.T, backend string, key []byte, now func() time.Time) (store.Store, error)
	// Persistent: what a store held is there again after Close and Open.
	Persistent bool
	// Shared: two stores open on one backend see each other's writes, and
	// implement store.Watcher.
	Shared bool
	// ServerLockClock: locks expire by the backend server's clock (Redis's),
	// not by now. The suite then lets a short lock lapse in real time,
	// watching for it, instead of moving now past its expiry.
	ServerLockClock bool
	// AtRest returns the raw bytes a backend holds (nil: not checked), to
	// check that no token or secret is kept in the clear.
	AtRest func(t *testing.T, backend string) []byte
}

var (
	keyA = bytes.Repeat([]byte{0xA}, 32)
	keyB = bytes.Repeat([]byte{0xB}, 32)
)

// behaviour is one sub-test of the suite. needs, when set, says why a store
// without some capability skips it.
type behaviour struct {
	name  string
	run   func(t *testing.T, h Harness)
	needs func(h Harness) (ok bool, why string)
}

var behaviours = []behaviour{
	{name: "TokensRoundTrip", run: testTokensRoundTrip},
	{name: "PutReplacesCurrent", run: testPutReplacesCurrent},
	{name: "Remove", run: testRemove},
	{name: "Expiry", run: testExpiry},
	{name: "Sessions", run: testSessions},
	{name: "Secrets", run: testSecrets},
	{name: "Locks", run: testLocks},
	{name: "LockExpiry", run: testLockExpiry},
	{name: "Counters", run: testCounters},
	{name: "Concurrency", run: testConcurrency},
	{name: "PersistenceAndKey", run: testPersistence, needs: func(h Harness) (bool, string) {
		return h.Persistent, "the store keeps nothing after Close"
	}},
	{name: "NothingInTheClear", run: testAtRest, needs: func(h Harness) (bool, string) {
		return h.AtRest != nil, "the harness cannot read the backend's raw bytes"
	}},
	{name: "SharedAndWatched", run: testShared, needs: func(h Harness) (bool, string) {
		return h.Shared, "the store serves one process"
	}},
}

// Run runs every behaviour of the suite against the store h describes, each
// as a sub-test.
func Run(t *testing.T, h Harness) {
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) {
			if b.needs != nil {
				if ok, why := b.needs(h); !ok {
					t.Skip(why)
				}
			}
			b.run(t, h)
		})
	}
}

// open opens a store on backend with keyA, reading the real clock; the
// test closes it when it ends.
func open(t *testing.T, h Harness, backend string) store.Store {
	t.Helper()
	return openAt(t, h, backend, time.Now)
}

// openAt is open with the store reading time from now.
func openAt(t *testing.T, h Harness, backend string, now func() time.Time) store.Store {
	t.Helper()
	s, err := h.Open(t, backend, keyA, now)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fresh(t *testing.T, h Harness) store.Store { t.Helper(); return open(t, h, h.NewBackend(t)) }

var ctx = context.Background()

// now is rounded to the millisecond, the precision stores promise.
func now() time.Time { return time.Now().Truncate(time.Millisecond) }

func entry(group, hash, token string, life time.Duration) store.Entry {
	n := now()
	return store.Entry{
		Key:       store.Key{Group: group, PolicyHash: hash},
		Token:     token,
		CreatedAt: n,
		ExpiresAt: n.Add(life),
		RefreshAt: n.Add(life / 2),
	}
}

func sameEntry(a, b store.Entry) bool {
	ms := func(t time.Time) int64 { return t.UnixMilli() }
	return a.Key == b.Key && a.Token == b.Token && ms(a.CreatedAt) == ms(b.CreatedAt) &&
		ms(a.ExpiresAt) == ms(b.ExpiresAt) && ms(a.RefreshAt) == ms(b.RefreshAt)
}

func mustPut(t *testing.T, s store.Store, e store.Entry) {
	t.Helper()
	if err := s.Put(ctx, e); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func wantCurrent(t *testing.T, s store.Store, k store.Key, want *store.Entry) {
	t.Helper()
	got, ok, err := s.Current(ctx, k)
	switch {
	case err != nil:
		t.Fatalf("Current(%v): %v", k, err)
	case want == nil && ok:
		t.Fatalf("Current(%v) = %+v, want none", k, got)
	case want != nil && (!ok || !sameEntry(got, *want)):
		t.Fatalf("Current(%v) = %+v, %v; want %+v", k, got, ok, *want)
	}
}

func wantByToken(t *testing.T, s store.Store, token string, want *store.Entry) {
	t.Helper()
	got, ok, err := s.ByToken(ctx, token)
	switch {
	case err != nil:
		t.Fatalf("ByToken: %v", err)
	case want == nil && ok:
		t.Fatalf("ByToken(%q) = %+v, want none", token, got)
	case want != nil && (!ok || !sameEntry(got, *want)):
		t.Fatalf("ByToken(%q) = %+v, %v; want %+v", token, got, ok, *want)
	}
}

func tokensOf(t *testing.T, s store.Store) map[string]bool {
	t.Helper()
	es, err := s.Entries(ctx)
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	out := map[string]bool{}
	for _, e := range es {
		out[e.Token] = true
	}
	return out
}
