package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

var _ KeyStore = store.SharedSecret{}

var rkAlgorithms = []string{"EdDSA", "ES256"}

// rkCountingStore counts the loads of the set.
type rkCountingStore struct {
	KeyStore
	loads atomic.Int64
}

func (s *rkCountingStore) Load(ctx context.Context) (string, time.Time, time.Time, bool, error) {
	s.loads.Add(1)
	return s.KeyStore.Load(ctx)
}

func newRKStore(clock *clocktest.Clock) store.SharedSecret {
	return store.SharedSecret{Store: memstore.New(memstore.Config{Now: clock.Now}), Name: "session-keys"}
}

func newRK(t *testing.T, alg string, store KeyStore, clock *clocktest.Clock, log *slog.Logger) *RotatingKeys {
	t.Helper()
	k, err := NewRotatingKeys(context.Background(), RotatingKeysConfig{
		Algorithm: alg, Store: store, Rotation: 24 * time.Hour, Retain: 25 * time.Hour, Now: clock.Now, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRKSessions(t *testing.T, keys KeySource, clock *clocktest.Clock, ttl time.Duration) *Sessions {
	t.Helper()
	s, err := NewSessions(SessionConfig{Keys: keys, Issuer: "tokenbroker", Audience: "tokenbroker", TTL: ttl, Leeway: 30 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rkIssue(t *testing.T, s *Sessions) string {
	t.Helper()
	tok, _, err := s.Issue(context.Background(), User{Username: "user.boston@acme.com", Group: "BOSTON"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func rkHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Header
}

func rkKID(t *testing.T, k *RotatingKeys) string {
	t.Helper()
	sk, err := k.SigningKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sk.ID
}

// rkStored returns the kids of the stored set and the stored value.
func rkStored(t *testing.T, store KeyStore) ([]string, string) {
	t.Helper()
	value, _, _, ok, err := store.Load(context.Background())
	if err != nil || !ok {
		t.Fatalf("stored set: ok %v, err %v", ok, err)
	}
	var st storedSessionKeys
	if err := json.Unmarshal([]byte(value), &st); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range st.Keys {
		if len(k.PKCS8) == 0 {
			t.Fatalf("stored key %s has no private key", k.KID)
		}
		kids = append(kids, k.KID)
	}
	return kids, value
}

func TestRotatingKeysSessionRoundTrip(t *testing.T) {
	for _, alg := range rkAlgorithms {
		t.Run(alg, func(t *testing.T) {
			clock := clocktest.New()
			keys := newRK(t, alg, newRKStore(clock), clock, nil)
			s := newRKSessions(t, keys, clock, time.Hour)
			tok := rkIssue(t, s)
			h := rkHeader(t, tok)
			kid := rkKID(t, keys)
			if h["kid"] != kid || h["alg"] != alg {
				t.Fatalf("header = %v, want kid %s and alg %s", h, kid, alg)
			}
			if b, err := base64.RawURLEncoding.DecodeString(kid); err != nil || len(b) != 16 {
				t.Fatalf("kid %q is not 16 random bytes in base64url", kid)
			}
			p, err := s.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if p.Subject != "user.boston@acme.com" || p.Group != "BOSTON" {
				t.Fatalf("principal = %+v", p)
			}
			if got := keys.Algorithms(); len(got) != 1 || got[0] != alg {
				t.Fatalf("Algorithms = %v", got)
			}
		})
	}
}

func TestRotatingKeysReplicas(t *testing.T) {
	for _, alg := range rkAlgorithms {
		t.Run(alg, func(t *testing.T) {
			clock := clocktest.New()
			store := newRKStore(clock)
			var replicas [2]*RotatingKeys
			var errs [2]error
			var wg sync.WaitGroup
			for i := range replicas {
				wg.Go(func() {
					replicas[i], errs[i] = NewRotatingKeys(context.Background(), RotatingKeysConfig{Algorithm: alg, Store: store, Now: clock.Now})
				})
			}
			wg.Wait()
			if err := errors.Join(errs[:]...); err != nil {
				t.Fatal(err)
			}
			a, b := replicas[0], replicas[1]
			if rkKID(t, a) != rkKID(t, b) {
				t.Fatal("two replicas created two key sets")
			}
			if kids, _ := rkStored(t, store); len(kids) != 1 || kids[0] != rkKID(t, a) {
				t.Fatalf("stored kids = %v", kids)
			}
			sa, sb := newRKSessions(t, a, clock, time.Hour), newRKSessions(t, b, clock, time.Hour)
			if _, err := sb.Verify(context.Background(), rkIssue(t, sa)); err != nil {
				t.Fatalf("b refuses a's session: %v", err)
			}
			if _, err := sa.Verify(context.Background(), rkIssue(t, sb)); err != nil {
				t.Fatalf("a refuses b's session: %v", err)
			}
		})
	}
}

func TestRotatingKeysStartWaitsForTheLockHolder(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New()
	store := newRKStore(clock)
	// Another replica holds the lock, creating the set.
	release, ok, err := store.TryLock(ctx, time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer release()
	type result struct {
		k   *RotatingKeys
		err error
	}
	started := make(chan result, 1)
	go func() {
		k, err := NewRotatingKeys(ctx, RotatingKeysConfig{Algorithm: "EdDSA", Store: store, Now: clock.Now})
		started <- result{k, err}
	}()
	// The holder saves its set, made elsewhere, and the waiter loads it.
	elsewhere := newRKStore(clock)
	creator := newRK(t, "EdDSA", elsewhere, clock, nil)
	_, value := rkStored(t, elsewhere)
	if err := store.Save(ctx, value, clock.Now(), clock.Now().AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	r := <-started
	if r.err != nil {
		t.Fatal(r.err)
	}
	if rkKID(t, r.k) != rkKID(t, creator) {
		t.Fatal("the waiting replica made a key set of its own")
	}

	// A replica that gives up waiting says so.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := NewRotatingKeys(cancelled, RotatingKeysConfig{Algorithm: "EdDSA", Store: newLockedRKStore(t, clock), Now: clock.Now}); err == nil {
		t.Fatal("NewRotatingKeys succeeded with no key set and the lock held")
	}
}

// newLockedRKStore returns an empty store whose lock another replica holds.
func newLockedRKStore(t *testing.T, clock *clocktest.Clock) KeyStore {
	t.Helper()
	store := newRKStore(clock)
	release, ok, err := store.TryLock(context.Background(), time.Hour)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	t.Cleanup(release)
	return store
}

func TestNewRotatingKeysConfig(t *testing.T) {
	clock := clocktest.New()
	store := newRKStore(clock)
	tests := []struct {
		name string
		cfg  RotatingKeysConfig
		ok   bool
	}{
		{"defaults", RotatingKeysConfig{Algorithm: "EdDSA", Store: store}, true},
		{"minimum rotation", RotatingKeysConfig{Algorithm: "ES256", Store: store, Rotation: time.Minute, Retain: time.Hour}, true},
		{"unknown algorithm", RotatingKeysConfig{Algorithm: "RS256", Store: store}, false},
		{"HS256", RotatingKeysConfig{Algorithm: "HS256", Store: store}, false},
		{"no algorithm", RotatingKeysConfig{Store: store}, false},
		{"no store", RotatingKeysConfig{Algorithm: "EdDSA"}, false},
		{"rotation under a minute", RotatingKeysConfig{Algorithm: "EdDSA", Store: store, Rotation: 59 * time.Second}, false},
		{"negative rotation", RotatingKeysConfig{Algorithm: "EdDSA", Store: store, Rotation: -time.Hour}, false},
		{"negative retention", RotatingKeysConfig{Algorithm: "EdDSA", Store: store, Retain: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Now = clock.Now
			k, err := NewRotatingKeys(context.Background(), tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if err == nil && (k.cfg.Rotation < time.Minute || k.cfg.Retain <= 0 || k.interval <= 0 || k.interval > time.Minute) {
				t.Fatalf("config after defaults: %+v, interval %v", k.cfg, k.interval)
			}
		})
	}
}

func TestRotatingKeysRunStops(t *testing.T) {
	clock := clocktest.New()
	k := newRK(t, "EdDSA", newRKStore(clock), clock, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		k.Run(ctx)
		close(done)
	}()
	cancel()
	<-done
}
