package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

var _ KeyStore = store.SharedSecret{}

var rkAlgorithms = []string{"EdDSA", "ES256"}

// rkClock is a settable clock.
type rkClock struct {
	mu  sync.Mutex
	now time.Time
}

func newRKClock() *rkClock { return &rkClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)} }

func (c *rkClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *rkClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *rkClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// rkCountingStore counts the loads of the set.
type rkCountingStore struct {
	KeyStore
	loads atomic.Int64
}

func (s *rkCountingStore) Load(ctx context.Context) (string, time.Time, time.Time, bool, error) {
	s.loads.Add(1)
	return s.KeyStore.Load(ctx)
}

func newRKStore(clock *rkClock) store.SharedSecret {
	return store.SharedSecret{Store: memstore.New(memstore.Config{Now: clock.Now}), Name: "session-keys"}
}

func newRK(t *testing.T, alg string, store KeyStore, clock *rkClock, log *slog.Logger) *RotatingKeys {
	t.Helper()
	k, err := NewRotatingKeys(context.Background(), RotatingKeysConfig{
		Algorithm: alg, Store: store, Rotation: 24 * time.Hour, Retain: 25 * time.Hour, Now: clock.Now, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRKSessions(t *testing.T, keys KeySource, clock *rkClock, ttl time.Duration) *Sessions {
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

// rkJWKS parses a JWKS with the standard library alone, as a service
// verifying sessions would.
func rkJWKS(t *testing.T, k *RotatingKeys) (raw []map[string]any, keys map[string]any) {
	t.Helper()
	doc, err := k.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	keys = map[string]any{}
	for _, j := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := j[private]; ok {
				t.Fatalf("JWK has private member %q", private)
			}
		}
		if j["use"] != "sig" {
			t.Fatalf("JWK use = %v", j["use"])
		}
		coord := func(name string) []byte {
			s, _ := j[name].(string)
			b, err := base64.RawURLEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("JWK %s: %v", name, err)
			}
			return b
		}
		kid, _ := j["kid"].(string)
		switch {
		case j["kty"] == "OKP" && j["crv"] == "Ed25519" && j["alg"] == "EdDSA":
			x := coord("x")
			if len(x) != ed25519.PublicKeySize {
				t.Fatalf("Ed25519 x is %d bytes", len(x))
			}
			keys[kid] = ed25519.PublicKey(x)
		case j["kty"] == "EC" && j["crv"] == "P-256" && j["alg"] == "ES256":
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, coord("x")...), coord("y")...))
			if err != nil {
				t.Fatal(err)
			}
			keys[kid] = pub
		default:
			t.Fatalf("unexpected JWK %v", j)
		}
	}
	return set.Keys, keys
}

func TestRotatingKeysSessionRoundTrip(t *testing.T) {
	for _, alg := range rkAlgorithms {
		t.Run(alg, func(t *testing.T) {
			clock := newRKClock()
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
			clock := newRKClock()
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
	clock := newRKClock()
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
func newLockedRKStore(t *testing.T, clock *rkClock) KeyStore {
	t.Helper()
	store := newRKStore(clock)
	release, ok, err := store.TryLock(context.Background(), time.Hour)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	t.Cleanup(release)
	return store
}

func TestRotatingKeysRotation(t *testing.T) {
	const rotation, retain = 24 * time.Hour, 25 * time.Hour
	for _, alg := range rkAlgorithms {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			clock := newRKClock()
			shared := newRKStore(clock)
			storeA, storeB := &rkCountingStore{KeyStore: shared}, &rkCountingStore{KeyStore: shared}
			logs := &logtest.Buffer{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			a, b := newRK(t, alg, storeA, clock, log), newRK(t, alg, storeB, clock, log)
			// Sessions that outlive Retain, so that the key's retention is
			// what refuses them below, not their expiry.
			sa, sb := newRKSessions(t, a, clock, 30*24*time.Hour), newRKSessions(t, b, clock, 30*24*time.Hour)
			oldKID := rkKID(t, a)
			oldTok := rkIssue(t, sa)

			clock.Advance(rotation - time.Second)
			if err := a.rotateIfDue(ctx); err != nil {
				t.Fatal(err)
			}
			if rkKID(t, a) != oldKID {
				t.Fatal("rotated before Rotation")
			}
			clock.Advance(time.Second)
			rotatedAt := clock.Now()
			if err := a.rotateIfDue(ctx); err != nil {
				t.Fatal(err)
			}
			newKID := rkKID(t, a)
			if newKID == oldKID {
				t.Fatal("signing key unchanged after Rotation")
			}
			if err := a.rotateIfDue(ctx); err != nil || rkKID(t, a) != newKID {
				t.Fatalf("rotated twice: %v", err)
			}
			if kids, _ := rkStored(t, shared); len(kids) != 2 || kids[0] != newKID || kids[1] != oldKID {
				t.Fatalf("stored kids = %v, want [%s %s]", kids, newKID, oldKID)
			}
			newTok := rkIssue(t, sa)
			if h := rkHeader(t, newTok); h["kid"] != newKID {
				t.Fatalf("new session kid = %v", h["kid"])
			}

			// b has not reloaded: the new kid is unknown to it, and one
			// reload finds it.
			loads := storeB.loads.Load()
			if _, err := sb.Verify(ctx, newTok); err != nil {
				t.Fatalf("b refuses the new key: %v", err)
			}
			if n := storeB.loads.Load() - loads; n != 1 {
				t.Fatalf("b loaded the set %d times, want 1", n)
			}
			if rkKID(t, b) != newKID {
				t.Fatal("b does not sign with the key it reloaded")
			}

			// Made-up kids: at most one load per 5s of the clock.
			randomKIDs := func() int64 {
				before := storeB.loads.Load()
				var wg sync.WaitGroup
				for range 100 {
					wg.Go(func() {
						var id [16]byte
						_, _ = rand.Read(id[:])
						if _, err := b.VerificationKey(ctx, base64.RawURLEncoding.EncodeToString(id[:]), alg); err == nil {
							t.Error("a random kid verifies")
						}
					})
				}
				wg.Wait()
				return storeB.loads.Load() - before
			}
			if n := randomKIDs(); n != 0 {
				t.Fatalf("100 random kids right after a reload: %d loads, want 0", n)
			}
			clock.Advance(4 * time.Second)
			if n := randomKIDs(); n != 0 {
				t.Fatalf("100 random kids 4s after a reload: %d loads, want 0", n)
			}
			clock.Advance(time.Second)
			if n := randomKIDs(); n != 1 {
				t.Fatalf("100 random kids 5s after a reload: %d loads, want 1", n)
			}

			// The replaced key verifies until Retain after its replacement.
			verifyOld := func() error {
				errs := []error{}
				for _, s := range []*Sessions{sa, sb} {
					if _, err := s.Verify(ctx, oldTok); err != nil {
						errs = append(errs, err)
					}
				}
				if len(errs) == 1 {
					t.Fatal("replicas disagree on the old key")
				}
				return errors.Join(errs...)
			}
			for _, at := range []time.Time{rotatedAt, rotatedAt.Add(retain - time.Second)} {
				clock.Set(at)
				if err := verifyOld(); err != nil {
					t.Fatalf("old session at rotation+%v: %v", at.Sub(rotatedAt), err)
				}
			}
			clock.Set(rotatedAt.Add(retain))
			if err := verifyOld(); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("old session after Retain: %v", err)
			}
			if _, err := a.VerificationKey(ctx, oldKID, alg); err == nil {
				t.Fatal("old key verifies after Retain")
			}
			if _, err := sb.Verify(ctx, newTok); err != nil {
				t.Fatalf("new session: %v", err)
			}
			if rkKID(t, b) != newKID {
				t.Fatal("b signs with a replaced key")
			}

			// The next rotation (due: the new key is now older than
			// Rotation) drops the expired key from the store.
			if err := b.rotateIfDue(ctx); err != nil {
				t.Fatal(err)
			}
			kids, value := rkStored(t, shared)
			if len(kids) != 2 || kids[1] != newKID {
				t.Fatalf("stored kids = %v, want [<newest> %s]", kids, newKID)
			}
			if err := a.rotateIfDue(ctx); err != nil || rkKID(t, a) != kids[0] {
				t.Fatalf("a rotated again instead of adopting b's key: %v", err)
			}

			// Nothing logged holds a private key.
			var st storedSessionKeys
			if err := json.Unmarshal([]byte(value), &st); err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			if !strings.Contains(out, "new signing key") {
				t.Fatalf("rotation not logged: %s", out)
			}
			for _, k := range st.Keys {
				if strings.Contains(out, base64.StdEncoding.EncodeToString(k.PKCS8)) {
					t.Fatal("a private key was logged")
				}
			}
		})
	}
}

func TestRotatingKeysJWKS(t *testing.T) {
	for _, alg := range rkAlgorithms {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			clock := newRKClock()
			store := newRKStore(clock)
			keys := newRK(t, alg, store, clock, nil)
			s := newRKSessions(t, keys, clock, time.Hour)
			raw, pubs := rkJWKS(t, keys)
			oldKID := rkKID(t, keys)
			if len(raw) != 1 || pubs[oldKID] == nil {
				t.Fatalf("JWKS = %v", raw)
			}
			_, stored := rkStored(t, store)
			if doc, _ := keys.JWKS(ctx); strings.Contains(string(doc), "pkcs8") || len(doc) >= len(stored) {
				t.Fatalf("JWKS looks like the stored set: %s", doc)
			}

			// A service verifies a session with the published key alone.
			verify := func(tok string, pubs map[string]any) error {
				_, err := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithAudience("tokenbroker"), jwt.WithIssuer("tokenbroker"), jwt.WithTimeFunc(clock.Now)).
					Parse(tok, func(t *jwt.Token) (any, error) {
						kid, _ := t.Header["kid"].(string)
						if k, ok := pubs[kid]; ok {
							return k, nil
						}
						return nil, errors.New("unknown kid")
					})
				return err
			}
			oldTok := rkIssue(t, s)
			if err := verify(oldTok, pubs); err != nil {
				t.Fatalf("published key refuses a session: %v", err)
			}

			clock.Advance(24 * time.Hour)
			if err := keys.rotateIfDue(ctx); err != nil {
				t.Fatal(err)
			}
			newTok := rkIssue(t, s)
			raw, pubs = rkJWKS(t, keys)
			if len(raw) != 2 || raw[0]["kid"] != rkKID(t, keys) || raw[1]["kid"] != oldKID {
				t.Fatalf("JWKS after rotation = %v, want newest first and the old key", raw)
			}
			if err := verify(newTok, pubs); err != nil {
				t.Fatalf("published key refuses a new session: %v", err)
			}

			clock.Advance(25 * time.Hour)
			raw, pubs = rkJWKS(t, keys)
			if len(raw) != 1 || pubs[oldKID] != nil {
				t.Fatalf("JWKS after Retain = %v, want the old key gone", raw)
			}
		})
	}
}

func TestRotatingKeysRefuse(t *testing.T) {
	for _, alg := range rkAlgorithms {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			clock := newRKClock()
			now := clock.Now()
			keys := newRK(t, alg, newRKStore(clock), clock, nil)
			s := newRKSessions(t, keys, clock, time.Hour)
			kid := rkKID(t, keys)
			jwks, err := keys.JWKS(ctx)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := rkJWKS(t, keys)
			x, _ := base64.RawURLEncoding.DecodeString(raw[0]["x"].(string))
			publicBytes := x
			if y, ok := raw[0]["y"].(string); ok {
				yb, _ := base64.RawURLEncoding.DecodeString(y)
				publicBytes = append(append([]byte{4}, x...), yb...)
			}

			_, edKey, _ := ed25519.GenerateKey(rand.Reader)
			ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			foreign := map[string]struct {
				method jwt.SigningMethod
				key    any
			}{
				"EdDSA": {jwt.SigningMethodEdDSA, edKey},
				"ES256": {jwt.SigningMethodES256, ecKey},
			}
			other := "ES256"
			if alg == "ES256" {
				other = "EdDSA"
			}
			claims := jwt.MapClaims{
				"iss": "tokenbroker", "aud": []string{"tokenbroker"}, "sub": "u", "group": "BOSTON",
				"jti": "id-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			}
			signKID := func(method jwt.SigningMethod, key any, kid string) string {
				tok := jwt.NewWithClaims(method, claims)
				if kid != "" {
					tok.Header["kid"] = kid
				}
				out, err := tok.SignedString(key)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			b64 := base64.RawURLEncoding.EncodeToString
			good := rkIssue(t, s)
			parts := strings.Split(good, ".")

			tests := []struct {
				name  string
				token string
			}{
				{"HS256 with the public key as secret", signKID(jwt.SigningMethodHS256, publicBytes, kid)},
				{"HS256 with the JWKS as secret", signKID(jwt.SigningMethodHS256, jwks, kid)},
				{"HS256 with the public key and no kid", signKID(jwt.SigningMethodHS256, publicBytes, "")},
				{"alg none", b64([]byte(`{"alg":"none","kid":"`+kid+`","typ":"JWT"}`)) + "." + parts[1] + "."},
				{"alg none signed by library", signKID(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid)},
				{"unknown kid", signKID(foreign[alg].method, foreign[alg].key, b64([]byte("0123456789abcdef")))},
				{"no kid", signKID(foreign[alg].method, foreign[alg].key, "")},
				{"right kid, foreign key", signKID(foreign[alg].method, foreign[alg].key, kid)},
				{"right kid, wrong alg", signKID(foreign[other].method, foreign[other].key, kid)},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if _, err := s.Verify(ctx, tt.token); !errors.Is(err, ErrUnauthenticated) {
						t.Fatalf("Verify = %v, want ErrUnauthenticated", err)
					}
				})
			}
			if _, err := s.Verify(ctx, good); err != nil {
				t.Fatalf("a good session is refused: %v", err)
			}

			// The key source itself, were another parser less strict.
			for _, c := range []struct{ kid, alg string }{{kid, "HS256"}, {kid, other}, {kid, "none"}, {"", alg}, {"unknown", alg}} {
				if k, err := keys.VerificationKey(ctx, c.kid, c.alg); err == nil {
					t.Fatalf("VerificationKey(%q, %q) = %T", c.kid, c.alg, k)
				}
			}
		})
	}
}

func TestNewRotatingKeysConfig(t *testing.T) {
	clock := newRKClock()
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

func TestRotatingKeysStoreStates(t *testing.T) {
	ctx := context.Background()

	t.Run("corrupt set is refused, not overwritten", func(t *testing.T) {
		clock := newRKClock()
		store := newRKStore(clock)
		secret := `{"version":1,"keys":[{"kid":"k1","alg":"EdDSA","created":"2026-01-01T00:00:00Z","pkcs8":"c2VjcmV0LWtleS1tYXRlcmlhbA=="}]}`
		for _, value := range []string{"not json secret-key-material", secret} {
			if err := store.Save(ctx, value, clock.Now(), clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			_, err := NewRotatingKeys(ctx, RotatingKeysConfig{Algorithm: "EdDSA", Store: store, Now: clock.Now})
			if err == nil {
				t.Fatal("a corrupt set is accepted")
			}
			if strings.Contains(err.Error(), "secret-key-material") || strings.Contains(err.Error(), "c2VjcmV0") {
				t.Fatalf("error quotes the stored value: %v", err)
			}
			if got, _, _, _, _ := store.Load(ctx); got != value {
				t.Fatal("a corrupt set was overwritten")
			}
		}
	})

	t.Run("a set the store lost is restored", func(t *testing.T) {
		clock := newRKClock()
		store := newRKStore(clock)
		k := newRK(t, "EdDSA", store, clock, nil)
		kid := rkKID(t, k)
		_, value := rkStored(t, store)
		if err := store.Drop(ctx, value); err != nil {
			t.Fatal(err)
		}
		k.tick(ctx)
		if kids, _ := rkStored(t, store); len(kids) != 1 || kids[0] != kid {
			t.Fatalf("stored kids after restore = %v, want [%s]", kids, kid)
		}
	})

	t.Run("two algorithms coexist during a change", func(t *testing.T) {
		clock := newRKClock()
		store := newRKStore(clock)
		ed := newRK(t, "EdDSA", store, clock, nil)
		es := newRK(t, "ES256", store, clock, nil)
		edKID, esKID := rkKID(t, ed), rkKID(t, es)
		if edKID == esKID {
			t.Fatal("the ES256 replica signs with the EdDSA key")
		}
		for _, k := range []*RotatingKeys{ed, es} {
			k.tick(ctx)
		}
		if rkKID(t, ed) != edKID || rkKID(t, es) != esKID {
			t.Fatal("the replicas took turns rotating")
		}
		if kids, _ := rkStored(t, store); len(kids) != 2 {
			t.Fatalf("stored kids = %v", kids)
		}
		// Once the EdDSA replicas are gone, the ES256 rotation retires
		// their last key.
		clock.Advance(24 * time.Hour)
		if err := es.rotateIfDue(ctx); err != nil {
			t.Fatal(err)
		}
		clock.Advance(25 * time.Hour)
		if err := es.rotateIfDue(ctx); err != nil {
			t.Fatal(err)
		}
		kids, _ := rkStored(t, store)
		for _, kid := range kids {
			if kid == edKID {
				t.Fatalf("stored kids = %v: the EdDSA key stays", kids)
			}
		}
	})
}

func TestRotatingKeysRunStops(t *testing.T) {
	clock := newRKClock()
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
