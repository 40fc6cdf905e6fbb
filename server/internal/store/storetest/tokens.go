package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

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
