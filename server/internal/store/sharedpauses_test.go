package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

// A pause is read back to the nanosecond, forgotten when its record
// expires, cleared only if no later pause replaced it, and probed by one
// owner at a time.
func TestSharedPauses(t *testing.T) {
	ctx := context.Background()
	clk := clocktest.New()
	p := store.SharedPauses{Store: memstore.New(memstore.Config{Now: clk.Now}), Name: "carto-pause"}
	until := clk.Now().Add(6*time.Second + 123)
	if err := p.SetPause(ctx, "create", until, until.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := p.Pause(ctx, "create"); !ok || err != nil || !got.Equal(until) {
		t.Fatalf("Pause = %v, %v, %v; want %v", got, ok, err, until)
	}
	if _, ok, _ := p.Pause(ctx, "oauth"); ok {
		t.Fatal("a pause of create paused oauth")
	}

	release, ok, err := p.TryProbe(ctx, "create", time.Second)
	if !ok || err != nil {
		t.Fatalf("first probe: %v %v", ok, err)
	}
	if _, ok, _ := p.TryProbe(ctx, "create", time.Second); ok {
		t.Fatal("a second probe while the first is in flight")
	}
	release()

	// Another replica was paused again since: an older probe keeps it.
	later := until.Add(6 * time.Second)
	if err := p.SetPause(ctx, "create", later, later.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := p.ClearPause(ctx, "create", until); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := p.Pause(ctx, "create"); !ok {
		t.Fatal("a probe of an older pause cleared a newer one")
	}
	if err := p.ClearPause(ctx, "create", later); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := p.Pause(ctx, "create"); ok {
		t.Fatal("pause not cleared")
	}

	if err := p.SetPause(ctx, "list", until, until.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute + 7*time.Second)
	if _, ok, _ := p.Pause(ctx, "list"); ok {
		t.Fatal("a pause outlived its record")
	}
}
