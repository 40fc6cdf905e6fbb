package boltstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenbroker/tokenbroker/server/internal/seal"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/boltstore"
	"github.com/tokenbroker/tokenbroker/server/internal/store/storetest"
)

var (
	ctx = context.Background()
	key = bytes.Repeat([]byte{0x42}, 32)
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewBackend: func(t *testing.T) string { return filepath.Join(t.TempDir(), "tokens.db") },
		Open: func(_ *testing.T, path string, key []byte) (store.Store, error) {
			s, err := boltstore.Open(boltstore.Config{Path: path, Key: key})
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return s, nil
		},
		Persistent: true,
		AtRest: func(t *testing.T, path string) []byte {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	})
}

func open(t *testing.T, cfg boltstore.Config) *boltstore.Store {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = key
	}
	s, err := boltstore.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entry(group, token string, now time.Time, life time.Duration) store.Entry {
	return store.Entry{
		Key:       store.Key{Group: group, PolicyHash: "h"},
		Token:     token,
		CreatedAt: now,
		ExpiresAt: now.Add(life),
		RefreshAt: now.Add(life / 2),
	}
}

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

func TestInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	first := open(t, boltstore.Config{Path: path})

	start := time.Now()
	_, err := boltstore.Open(boltstore.Config{Path: path, Key: key, OpenTimeout: 200 * time.Millisecond})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v, want an in-use error naming %s", err, path)
	}
	if took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("second Open failed after %v, want about 200ms", took)
	}
	t.Log(err)

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, boltstore.Config{Path: path, OpenTimeout: 200 * time.Millisecond})
}

func TestNotABoltFile(t *testing.T) {
	large := make([]byte, 64<<10)
	rand.Read(large)
	for name, content := range map[string][]byte{
		"short": []byte("this is not a bbolt database\n"),
		"large": large,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := boltstore.Open(boltstore.Config{Path: path, Key: key})
			if err == nil {
				s.Close()
				t.Fatal("Open of a garbage file succeeded")
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			t.Log(err)
		})
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	open(t, boltstore.Config{Path: path})
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("file mode %v, want 0600", perm)
	}
}

func TestBadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	if _, err := boltstore.Open(boltstore.Config{Path: path, Key: []byte("short")}); err == nil {
		t.Fatal("Open with a 5-byte key succeeded")
	}
	if _, err := boltstore.Open(boltstore.Config{Key: key}); err == nil {
		t.Fatal("Open without a path succeeded")
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

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func TestPruneOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
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
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
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

func TestCountsSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	at := time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)
	for want := int64(1); want <= 3; want++ {
		s := open(t, boltstore.Config{Path: path})
		n, err := s.Count(ctx, "creations", at, time.Hour, 1)
		if err != nil || n != want {
			t.Fatalf("count %d, %v; want %d", n, err, want)
		}
		s.Close()
	}
}

func TestClosed(t *testing.T) {
	s := open(t, boltstore.Config{Path: filepath.Join(t.TempDir(), "tokens.db")})
	l, err := s.TryLock(ctx, "mint:a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	e := entry("BOSTON", "tok", time.Now(), time.Hour)
	for name, err := range map[string]error{
		"Put":           s.Put(ctx, e),
		"Remove":        s.Remove(ctx, e.Token),
		"RevokeSession": s.RevokeSession(ctx, "s", time.Now().Add(time.Hour)),
		"PutSecret":     s.PutSecret(ctx, "n", store.Secret{}),
		"Extend":        l.Extend(ctx, time.Minute),
		"Current":       second(s.Current(ctx, e.Key)),
		"ByToken":       second(s.ByToken(ctx, e.Token)),
		"Entries":       last(s.Entries(ctx)),
		"Sessions":      last(s.RevokedSessions(ctx)),
		"Secret":        second(s.Secret(ctx, "n")),
		"TryLock":       last(s.TryLock(ctx, "mint:b", time.Minute)),
		"Count":         last(s.Count(ctx, "creations", time.Now(), time.Hour, 1)),
	} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want ErrUnavailable", name, err)
		}
	}
	if err := l.Release(ctx); err != nil {
		t.Errorf("Release after Close: %v", err)
	}
}

func second[A, B any](_ A, _ B, err error) error { return err }
func last[A any](_ A, err error) error           { return err }

// TestSurvivesKill has a child process put a token and kill itself: the
// token is there for the next process, and the file is not left locked.
func TestSurvivesKill(t *testing.T) {
	if path := os.Getenv("BOLTSTORE_KILL_CHILD"); path != "" {
		s, err := boltstore.Open(boltstore.Config{Path: path, Key: key})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := s.Put(ctx, entry("BOSTON", "tok-killed", time.Now(), time.Hour)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		p, _ := os.FindProcess(os.Getpid())
		p.Kill() // SIGKILL: no Close, no deferred functions
		select {}
	}
	path := filepath.Join(t.TempDir(), "tokens.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesKill$")
	cmd.Env = append(os.Environ(), "BOLTSTORE_KILL_CHILD="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 2 {
		t.Fatalf("child: %v\n%s", err, out)
	}
	s := open(t, boltstore.Config{Path: path})
	if got, ok, err := s.Current(ctx, store.Key{Group: "BOSTON", PolicyHash: "h"}); err != nil || !ok || got.Token != "tok-killed" {
		t.Fatalf("after kill -9: %+v %v %v", got, ok, err)
	}
}
