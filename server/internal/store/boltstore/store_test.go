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
	"testing"
	"time"

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
		Open: func(_ *testing.T, path string, key []byte, now func() time.Time) (store.Store, error) {
			s, err := boltstore.Open(boltstore.Config{Path: path, Key: key, Now: now})
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
