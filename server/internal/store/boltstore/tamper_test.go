package boltstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenbroker/tokenbroker/server/internal/seal"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/boltstore"
)

// alter changes one record of the file directly.
func alter(t *testing.T, path, bucket, k string, change func(v []byte) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		v := b.Get([]byte(k))
		if v == nil {
			return fmt.Errorf("no record %q in %s", k, bucket)
		}
		return b.Put([]byte(k), change(bytes.Clone(v)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTampered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	now := time.Now()
	boston := entry("BOSTON", "tok-boston", now, time.Hour)
	nyc := entry("NEW YORK", "tok-nyc", now, time.Hour)
	chicago := entry("CHICAGO", "tok-chicago", now, time.Hour)
	s := open(t, boltstore.Config{Path: path})
	for _, e := range []store.Entry{boston, nyc, chicago} {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	// A flipped byte in a sealed token.
	alter(t, path, "tokens", store.TokenID(boston.Token), func(v []byte) []byte {
		v[len(v)-1] ^= 1
		return v
	})
	// NEW YORK's current pointer redirected to CHICAGO's (intact) token.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("current"))
		return b.ForEach(func(k, v []byte) error {
			if string(v) == store.TokenID(nyc.Token) {
				return b.Put(bytes.Clone(k), []byte(store.TokenID(chicago.Token)))
			}
			return nil
		})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = open(t, boltstore.Config{Path: path})
	if _, _, err := s.ByToken(ctx, boston.Token); !errors.Is(err, seal.ErrCorrupt) {
		t.Errorf("ByToken of an altered record: %v, want seal.ErrCorrupt", err)
	}
	if _, _, err := s.Current(ctx, boston.Key); !errors.Is(err, seal.ErrCorrupt) {
		t.Errorf("Current of an altered record: %v, want seal.ErrCorrupt", err)
	}
	if _, err := s.Entries(ctx); err == nil {
		t.Error("Entries with an altered record succeeded")
	}
	if got, _, err := s.Current(ctx, nyc.Key); err == nil {
		t.Errorf("Current followed a redirected pointer to another group's token: %+v", got)
	}
	if got, ok, err := s.Current(ctx, chicago.Key); err != nil || !ok || got.Token != chicago.Token {
		t.Errorf("Current of an intact record: %+v %v %v", got, ok, err)
	}
	// The altered record can still be removed.
	if err := s.Remove(ctx, boston.Token); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.ByToken(ctx, boston.Token); ok || err != nil {
		t.Fatalf("after Remove: %v %v", ok, err)
	}
}
