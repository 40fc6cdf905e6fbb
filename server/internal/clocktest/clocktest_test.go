package clocktest

import (
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := New()
	if !c.Now().Equal(Start) {
		t.Fatalf("New: %v, want %v", c.Now(), Start)
	}
	if got := c.Advance(time.Minute); !got.Equal(Start.Add(time.Minute)) || !c.Now().Equal(got) {
		t.Fatalf("Advance: %v, Now %v", got, c.Now())
	}
	c.Set(Start.Add(-time.Hour))
	if !c.Now().Equal(Start.Add(-time.Hour)) {
		t.Fatalf("Set backwards: %v", c.Now())
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { c.Advance(time.Second); _ = c.Now() })
	}
	wg.Wait()
	if want := Start.Add(-time.Hour + 8*time.Second); !c.Now().Equal(want) {
		t.Fatalf("8 concurrent advances: %v, want %v", c.Now(), want)
	}
}
