// Package storetest is the conformance suite of store.Store: every
// implementation runs it (Run) and so keeps the same contract.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Harness describes an implementation to the suite.
type Harness struct {
	// NewBackend returns a fresh, empty place to keep data: a file path, a
	// key prefix; whatever Open understands.
	NewBackend func(t *testing.T) string
	// Open opens a store on backend, sealing with key (32 bytes). The suite
	// closes what it opens.
	Open func(t *testing.T, backend string, key []byte) (store.Store, error)
	// Persistent: what a store held is there again after Close and Open.
	Persistent bool
	// Shared: two stores open on one backend see each other's writes, and
	// implement store.Watcher.
	Shared bool
	// AtRest returns the raw bytes a backend holds (nil: not checked), to
	// check that no token or secret is kept in the clear.
	AtRest func(t *testing.T, backend string) []byte
}

var (
	keyA = bytes.Repeat([]byte{0xA}, 32)
	keyB = bytes.Repeat([]byte{0xB}, 32)
)

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"TokensRoundTrip", testTokensRoundTrip},
		{"PutReplacesCurrent", testPutReplacesCurrent},
		{"Remove", testRemove},
		{"Expiry", testExpiry},
		{"Sessions", testSessions},
		{"Secrets", testSecrets},
		{"Locks", testLocks},
		{"LockExpiry", testLockExpiry},
		{"Counters", testCounters},
		{"Concurrency", testConcurrency},
	}
	if h.Persistent {
		tests = append(tests, struct {
			name string
			run  func(t *testing.T, h Harness)
		}{"PersistenceAndKey", testPersistence})
	}
	if h.AtRest != nil {
		tests = append(tests, struct {
			name string
			run  func(t *testing.T, h Harness)
		}{"NothingInTheClear", testAtRest})
	}
	if h.Shared {
		tests = append(tests, struct {
			name string
			run  func(t *testing.T, h Harness)
		}{"SharedAndWatched", testShared})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, h) })
	}
}

func open(t *testing.T, h Harness, backend string) store.Store {
	t.Helper()
	s, err := h.Open(t, backend, keyA)
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

func testTokensRoundTrip(t *testing.T, h Harness) {
	s := fresh(t, h)
	e := entry("NEW YORK", "h1", "tok-1", time.Hour)
	wantCurrent(t, s, e.Key, nil)
	mustPut(t, s, e)
	wantCurrent(t, s, e.Key, &e)
	wantByToken(t, s, "tok-1", &e)
	wantByToken(t, s, "tok-unknown", nil)
	wantCurrent(t, s, store.Key{Group: "NEW YORK", PolicyHash: "h2"}, nil)
	wantCurrent(t, s, store.Key{Group: "BOSTON", PolicyHash: "h1"}, nil)
	// A group that looks like a key separator stays its own key.
	odd := entry("a\x00b", "c", "tok-odd", time.Hour)
	mustPut(t, s, odd)
	wantCurrent(t, s, store.Key{Group: "a", PolicyHash: "b\x00c"}, nil)
	wantCurrent(t, s, odd.Key, &odd)
}

func testPutReplacesCurrent(t *testing.T, h Harness) {
	s := fresh(t, h)
	e1 := entry("BOSTON", "h", "tok-1", time.Hour)
	e2 := entry("BOSTON", "h", "tok-2", 2*time.Hour)
	mustPut(t, s, e1)
	mustPut(t, s, e2)
	wantCurrent(t, s, e1.Key, &e2)
	wantByToken(t, s, "tok-1", &e1)
	if got := tokensOf(t, s); len(got) != 2 || !got["tok-1"] || !got["tok-2"] {
		t.Fatalf("Entries = %v, want tok-1 and tok-2", got)
	}
}

func testRemove(t *testing.T, h Harness) {
	s := fresh(t, h)
	e1 := entry("BOSTON", "h", "tok-1", time.Hour)
	e2 := entry("BOSTON", "h", "tok-2", time.Hour)
	other := entry("NEW YORK", "h", "tok-3", time.Hour)
	mustPut(t, s, e1)
	mustPut(t, s, e2)
	mustPut(t, s, other)
	// Removing a replaced entry leaves the current one.
	if err := s.Remove(ctx, "tok-1"); err != nil {
		t.Fatal(err)
	}
	wantByToken(t, s, "tok-1", nil)
	wantCurrent(t, s, e2.Key, &e2)
	// Removing the current entry leaves the key with none.
	if err := s.Remove(ctx, "tok-2"); err != nil {
		t.Fatal(err)
	}
	wantCurrent(t, s, e2.Key, nil)
	wantByToken(t, s, "tok-2", nil)
	wantCurrent(t, s, other.Key, &other)
	if err := s.Remove(ctx, "tok-unknown"); err != nil {
		t.Fatalf("Remove of an unknown token: %v", err)
	}
	if got := tokensOf(t, s); len(got) != 1 || !got["tok-3"] {
		t.Fatalf("Entries = %v", got)
	}
}

func testExpiry(t *testing.T, h Harness) {
	s := fresh(t, h)
	gone := entry("BOSTON", "h", "tok-expired", -time.Second)
	gone.CreatedAt = gone.ExpiresAt.Add(-time.Hour)
	mustPut(t, s, gone)
	wantCurrent(t, s, gone.Key, nil)
	wantByToken(t, s, "tok-expired", nil)
	if got := tokensOf(t, s); len(got) != 0 {
		t.Fatalf("Entries lists expired tokens: %v", got)
	}
	// An expired current entry replaced by a live one.
	live := entry("BOSTON", "h", "tok-live", time.Hour)
	mustPut(t, s, live)
	wantCurrent(t, s, live.Key, &live)
}

func testSessions(t *testing.T, h Harness) {
	s := fresh(t, h)
	until := now().Add(time.Hour)
	for id, u := range map[string]time.Time{"s1": until, "s-expired": now().Add(-time.Second)} {
		if err := s.RevokeSession(ctx, id, u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.RevokedSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["s1"].UnixMilli() != until.UnixMilli() {
		t.Fatalf("RevokedSessions = %v, want s1 until %v", got, until)
	}
	// Revoking again keeps the later time.
	if err := s.RevokeSession(ctx, "s1", until.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	later := until.Add(time.Hour)
	if err := s.RevokeSession(ctx, "s1", later); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.RevokedSessions(ctx); got["s1"].UnixMilli() != later.UnixMilli() {
		t.Fatalf("s1 revoked until %v, want %v", got["s1"], later)
	}
}

func testSecrets(t *testing.T, h Harness) {
	s := fresh(t, h)
	if _, ok, err := s.Secret(ctx, "oauth"); ok || err != nil {
		t.Fatalf("empty store has a secret: %v %v", ok, err)
	}
	sec := store.Secret{Value: []byte("oauth-token-1"), Obtained: now(), ExpiresAt: now().Add(time.Hour)}
	if err := s.PutSecret(ctx, "oauth", sec); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Secret(ctx, "oauth")
	if err != nil || !ok || string(got.Value) != "oauth-token-1" || got.ExpiresAt.UnixMilli() != sec.ExpiresAt.UnixMilli() || got.Obtained.UnixMilli() != sec.Obtained.UnixMilli() {
		t.Fatalf("Secret = %+v, %v, %v", got, ok, err)
	}
	sec2 := store.Secret{Value: []byte("oauth-token-2"), Obtained: now(), ExpiresAt: now().Add(2 * time.Hour)}
	if err := s.PutSecret(ctx, "oauth", sec2); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Secret(ctx, "oauth"); string(got.Value) != "oauth-token-2" {
		t.Fatalf("after overwrite: %q", got.Value)
	}
	if err := s.PutSecret(ctx, "old", store.Secret{Value: []byte("x"), ExpiresAt: now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Secret(ctx, "old"); ok {
		t.Fatal("an expired secret is returned")
	}
}

func testLocks(t *testing.T, h Harness) {
	s := fresh(t, h)
	l1, err := s.TryLock(ctx, "mint:a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryLock(ctx, "mint:a", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second TryLock: %v, want ErrLocked", err)
	}
	lb, err := s.TryLock(ctx, "mint:b", time.Minute)
	if err != nil {
		t.Fatalf("another name: %v", err)
	}
	defer lb.Release(ctx)
	if err := l1.Extend(ctx, time.Minute); err != nil {
		t.Fatalf("Extend by the owner: %v", err)
	}
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2, err := s.TryLock(ctx, "mint:a", time.Minute)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	// The former owner can neither release nor extend the new owner's lock.
	_ = l1.Release(ctx)
	if err := l1.Extend(ctx, time.Minute); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("stale Extend: %v, want ErrLockLost", err)
	}
	if _, err := s.TryLock(ctx, "mint:a", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("a stale owner released the new owner's lock: %v", err)
	}
	_ = l2.Release(ctx)
}

func testLockExpiry(t *testing.T, h Harness) {
	s := fresh(t, h)
	old, err := s.TryLock(ctx, "mint:c", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond) // the holder "crashed": its lock expires
	next, err := s.TryLock(ctx, "mint:c", time.Minute)
	if err != nil {
		t.Fatalf("an expired lock still blocks: %v", err)
	}
	if err := old.Extend(ctx, time.Minute); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("Extend of an expired lock: %v, want ErrLockLost", err)
	}
	_ = old.Release(ctx)
	if _, err := s.TryLock(ctx, "mint:c", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("a slow former owner released the lock: %v", err)
	}
	_ = next.Release(ctx)
}

func testCounters(t *testing.T, h Harness) {
	s := fresh(t, h)
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i := int64(1); i <= 3; i++ {
		n, err := s.Count(ctx, "creations", t0.Add(time.Duration(i)*time.Minute), time.Hour, 1)
		if err != nil || n != i {
			t.Fatalf("creation %d: count %d, %v", i, n, err)
		}
	}
	if n, err := s.Count(ctx, "creations", t0.Add(30*time.Minute), time.Hour, 0); err != nil || n != 3 {
		t.Fatalf("reading with delta 0: %d, %v; want 3", n, err)
	}
	if n, err := s.Count(ctx, "creations", t0.Add(time.Hour+time.Minute), time.Hour, 1); err != nil || n != 1 {
		t.Fatalf("next window: %d, %v; want 1", n, err)
	}
	// A negative delta takes counts back (the quota guards undo a place
	// they took over a limit, or that a failed mint held), in the window
	// of at, not the current one.
	if n, err := s.Count(ctx, "creations", t0.Add(time.Minute), time.Hour, -2); err != nil || n != 1 {
		t.Fatalf("taking 2 back: %d, %v; want 1", n, err)
	}
	if n, err := s.Count(ctx, "creations", t0.Add(time.Hour+2*time.Minute), time.Hour, 0); err != nil || n != 1 {
		t.Fatalf("the next window after taking back in the previous one: %d, %v; want 1", n, err)
	}
	// Counters of other names, including odd ones, are apart.
	for _, name := range []string{"login:user:a@acme.com", "creations\x00x", "login:ip:10.0.0.1", ""} {
		if n, err := s.Count(ctx, name, t0, time.Hour, 5); err != nil || n != 5 {
			t.Fatalf("counter %q: %d, %v; want 5", name, n, err)
		}
	}
}

func testConcurrency(t *testing.T, h Harness) {
	s := fresh(t, h)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for g := range 20 {
		wg.Go(func() {
			for i := range 10 {
				e := entry(fmt.Sprint("G", g), "h", fmt.Sprintf("tok-%d-%d", g, i), time.Hour)
				if err := s.Put(ctx, e); err != nil {
					errs <- err
				}
				if got, ok, err := s.ByToken(ctx, e.Token); err != nil || !ok || !sameEntry(got, e) {
					errs <- fmt.Errorf("ByToken after Put: %+v %v %v", got, ok, err)
				}
				if i%2 == 1 {
					if err := s.Remove(ctx, e.Token); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := tokensOf(t, s)
	if len(got) != 100 {
		t.Fatalf("%d entries after 200 puts and 100 removes, want 100", len(got))
	}
	for g := range 20 {
		// Each group's current is its last put; it was removed (i=9 odd).
		wantCurrent(t, s, store.Key{Group: fmt.Sprint("G", g), PolicyHash: "h"}, nil)
	}
}

func testPersistence(t *testing.T, h Harness) {
	backend := h.NewBackend(t)
	s, err := h.Open(t, backend, keyA)
	if err != nil {
		t.Fatal(err)
	}
	e := entry("BOSTON", "h", "tok-persisted", time.Hour)
	mustPut(t, s, e)
	until := now().Add(time.Hour)
	if err := s.RevokeSession(ctx, "s1", until); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecret(ctx, "oauth", store.Secret{Value: []byte("o"), Obtained: now(), ExpiresAt: until}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := h.Open(t, backend, keyB); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("open with another key: %v, want ErrWrongKey", err)
	}
	s2 := open(t, h, backend)
	wantCurrent(t, s2, e.Key, &e)
	wantByToken(t, s2, "tok-persisted", &e)
	if got, _ := s2.RevokedSessions(ctx); got["s1"].UnixMilli() != until.UnixMilli() {
		t.Fatalf("revocation lost on reopen: %v", got)
	}
	if sec, ok, _ := s2.Secret(ctx, "oauth"); !ok || string(sec.Value) != "o" {
		t.Fatal("secret lost on reopen")
	}
}

func testAtRest(t *testing.T, h Harness) {
	backend := h.NewBackend(t)
	s := open(t, h, backend)
	mustPut(t, s, entry("BOSTON", "h", "TOKEN-SENTINEL-7f3a", time.Hour))
	if err := s.PutSecret(ctx, "oauth", store.Secret{Value: []byte("SECRET-SENTINEL-91bc"), ExpiresAt: now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw := h.AtRest(t, backend)
	if len(raw) == 0 {
		t.Fatal("AtRest returned nothing")
	}
	for _, sentinel := range []string{"TOKEN-SENTINEL-7f3a", "SECRET-SENTINEL-91bc"} {
		if bytes.Contains(raw, []byte(sentinel)) {
			t.Errorf("%s is stored in the clear", sentinel)
		}
	}
}

func testShared(t *testing.T, h Harness) {
	backend := h.NewBackend(t)
	a, b := open(t, h, backend), open(t, h, backend)
	w, ok := b.(store.Watcher)
	if !ok {
		t.Fatal("a shared store does not implement store.Watcher")
	}
	wctx, cancel := context.WithCancel(ctx)
	events := make(chan store.Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(wctx, func(ev store.Event) {
			select {
			case events <- ev:
			default:
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v", err)
		}
	}()
	next := func(kind store.EventKind) store.Event {
		t.Helper()
		deadline := time.After(3 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Kind == kind {
					return ev
				}
			case <-deadline:
				t.Fatalf("no event of kind %d within 3s", kind)
			}
		}
	}
	next(store.EventResync)
	synced := next(store.EventSynced)
	if time.Since(synced.At) > 2*time.Second {
		t.Fatalf("EventSynced reports %v, long ago", synced.At)
	}

	e := entry("BOSTON", "h", "tok-shared", time.Hour)
	mustPut(t, a, e)
	wantCurrent(t, b, e.Key, &e)

	start := time.Now()
	if err := a.Remove(ctx, e.Token); err != nil {
		t.Fatal(err)
	}
	if ev := next(store.EventEvicted); ev.TokenID != store.TokenID(e.Token) {
		t.Fatalf("evicted %q, want %q", ev.TokenID, store.TokenID(e.Token))
	}
	until := now().Add(time.Hour)
	if err := a.RevokeSession(ctx, "s-shared", until); err != nil {
		t.Fatal(err)
	}
	ev := next(store.EventSessionRevoked)
	if ev.SessionID != "s-shared" || ev.Until.UnixMilli() != until.UnixMilli() {
		t.Fatalf("session event %+v", ev)
	}
	t.Logf("eviction and revocation reached the other store in %v", time.Since(start))

	la, err := a.TryLock(ctx, "mint:shared", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, "mint:shared", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("the lock is not shared: %v", err)
	}
	_ = la.Release(ctx)
	if n, _ := b.Count(ctx, "creations", start, time.Hour, 1); n != 1 {
		t.Fatal("first count on b is not 1")
	}
	if n, _ := a.Count(ctx, "creations", start, time.Hour, 1); n != 2 {
		t.Fatalf("counts are not shared: a sees %d after b's 1", n)
	}
}
