package storetest

import (
	"testing"
	"time"
)

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
