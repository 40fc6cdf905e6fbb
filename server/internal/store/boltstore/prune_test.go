package boltstore_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/boltstore"
)

// bucketKeys lists the keys of every bucket in the file, read directly.
func bucketKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]string{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, _ []byte) error {
				out[string(name)] = append(out[string(name)], string(k))
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPruneOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	c := clocktest.New()
	s := open(t, boltstore.Config{Path: path, Now: c.Now})
	short := entry("BOSTON", "tok-short", c.Now(), time.Minute)
	long := entry("BOSTON", "tok-long", c.Now(), time.Hour)
	other := entry("NEW YORK", "tok-other", c.Now(), time.Minute)
	for _, e := range []store.Entry{short, long, other} {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeSession(ctx, "s-short", c.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeSession(ctx, "s-long", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecret(ctx, "old", store.Secret{Value: []byte("x"), ExpiresAt: c.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	c.Advance(2 * time.Minute)
	s = open(t, boltstore.Config{Path: path, Now: c.Now})
	if got, ok, err := s.Current(ctx, long.Key); err != nil || !ok || got.Token != long.Token {
		t.Fatalf("Current after prune: %+v %v %v", got, ok, err)
	}
	s.Close()

	got := bucketKeys(t, path)
	if want := []string{store.TokenID(long.Token)}; fmt.Sprint(got["tokens"]) != fmt.Sprint(want) {
		t.Errorf("tokens = %v, want only tok-long %v", got["tokens"], want)
	}
	if len(got["current"]) != 1 {
		t.Errorf("current has %d pointers, want BOSTON's only", len(got["current"]))
	}
	if fmt.Sprint(got["sessions"]) != "[s-long]" {
		t.Errorf("sessions = %v, want [s-long]", got["sessions"])
	}
	if len(got["secrets"]) != 0 {
		t.Errorf("secrets = %v, want none", got["secrets"])
	}
}

func TestPruneAsItGoes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	c := clocktest.New()
	s := open(t, boltstore.Config{Path: path, Now: c.Now})
	for i := range 10 {
		if err := s.Put(ctx, entry(fmt.Sprint("G", i), fmt.Sprint("tok-", i), c.Now(), time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSession(ctx, fmt.Sprint("s-", i), c.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(2 * time.Minute)
	for i := range 300 { // more than one sweep's worth of writes
		if err := s.RevokeSession(ctx, "s-live", c.Now().Add(time.Duration(i+1)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	t0 := c.Now().Truncate(time.Hour)
	for _, at := range []time.Time{t0, t0.Add(time.Hour), t0.Add(2 * time.Hour)} {
		if _, err := s.Count(ctx, "creations", at, time.Hour, 1); err != nil {
			t.Fatal(err)
		}
	}
	s.Close() // Close does not prune: what is gone, writes swept

	got := bucketKeys(t, path)
	if len(got["tokens"]) != 0 || len(got["current"]) != 0 {
		t.Errorf("expired tokens left: %v, pointers %d", got["tokens"], len(got["current"]))
	}
	if fmt.Sprint(got["sessions"]) != "[s-live]" {
		t.Errorf("sessions = %v, want [s-live]", got["sessions"])
	}
	if len(got["counters"]) != 2 {
		t.Errorf("%d counter windows kept, want the last two", len(got["counters"]))
	}
}
