package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
)

// TestRotatingKeysRotation follows two replicas through a rotation: a
// rotates, b finds the new key at its first use, made-up kids cost few
// reloads, the replaced key verifies until Retain after its replacement,
// and the next rotation drops it from the store; no private key is logged.
func TestRotatingKeysRotation(t *testing.T) {
	for _, alg := range rkAlgorithms {
		t.Run(alg, func(t *testing.T) {
			r := newRKRotation(t, alg)
			oldKID := rkKID(t, r.a)
			oldTok := rkIssue(t, r.sa)
			rotatedAt, newKID := r.rotateA(t, oldKID)
			newTok := rkIssue(t, r.sa)
			if h := rkHeader(t, newTok); h["kid"] != newKID {
				t.Fatalf("new session kid = %v", h["kid"])
			}
			r.bReloadsOnce(t, newTok, newKID)
			r.randomKIDsReloadEvery5s(t)
			r.oldKeyVerifiesUntilRetain(t, rotatedAt, oldTok, oldKID, newTok, newKID)
			value := r.nextRotationDropsIt(t, newKID)
			r.noPrivateKeyLogged(t, value)
		})
	}
}

// rkRotation is two replicas, a and b, sharing a store, each with its
// sessions; storeB counts b's loads.
type rkRotation struct {
	alg    string
	ctx    context.Context
	clock  *clocktest.Clock
	shared KeyStore
	storeB *rkCountingStore
	a, b   *RotatingKeys
	sa, sb *Sessions
	logs   *logtest.Buffer
}

const rkRotation24h, rkRetain25h = 24 * time.Hour, 25 * time.Hour

func newRKRotation(t *testing.T, alg string) *rkRotation {
	clock := clocktest.New()
	shared := newRKStore(clock)
	storeA, storeB := &rkCountingStore{KeyStore: shared}, &rkCountingStore{KeyStore: shared}
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, b := newRK(t, alg, storeA, clock, log), newRK(t, alg, storeB, clock, log)
	// Sessions that outlive Retain, so that the key's retention is what
	// refuses them below, not their expiry.
	sa, sb := newRKSessions(t, a, clock, 30*24*time.Hour), newRKSessions(t, b, clock, 30*24*time.Hour)
	return &rkRotation{alg: alg, ctx: context.Background(), clock: clock, shared: shared, storeB: storeB, a: a, b: b, sa: sa, sb: sb, logs: logs}
}

// rotateA rotates a once Rotation has passed, not before, and only once.
func (r *rkRotation) rotateA(t *testing.T, oldKID string) (rotatedAt time.Time, newKID string) {
	t.Helper()
	r.clock.Advance(rkRotation24h - time.Second)
	if err := r.a.rotateIfDue(r.ctx); err != nil {
		t.Fatal(err)
	}
	if rkKID(t, r.a) != oldKID {
		t.Fatal("rotated before Rotation")
	}
	rotatedAt = r.clock.Advance(time.Second)
	if err := r.a.rotateIfDue(r.ctx); err != nil {
		t.Fatal(err)
	}
	newKID = rkKID(t, r.a)
	if newKID == oldKID {
		t.Fatal("signing key unchanged after Rotation")
	}
	if err := r.a.rotateIfDue(r.ctx); err != nil || rkKID(t, r.a) != newKID {
		t.Fatalf("rotated twice: %v", err)
	}
	if kids, _ := rkStored(t, r.shared); len(kids) != 2 || kids[0] != newKID || kids[1] != oldKID {
		t.Fatalf("stored kids = %v, want [%s %s]", kids, newKID, oldKID)
	}
	return rotatedAt, newKID
}

// bReloadsOnce: b has not reloaded, so the new kid is unknown to it, and
// one reload finds it.
func (r *rkRotation) bReloadsOnce(t *testing.T, newTok, newKID string) {
	t.Helper()
	loads := r.storeB.loads.Load()
	if _, err := r.sb.Verify(r.ctx, newTok); err != nil {
		t.Fatalf("b refuses the new key: %v", err)
	}
	if n := r.storeB.loads.Load() - loads; n != 1 {
		t.Fatalf("b loaded the set %d times, want 1", n)
	}
	if rkKID(t, r.b) != newKID {
		t.Fatal("b does not sign with the key it reloaded")
	}
}

// randomKIDsReloadEvery5s: made-up kids cause at most one load per 5s of the
// clock.
func (r *rkRotation) randomKIDsReloadEvery5s(t *testing.T) {
	t.Helper()
	randomKIDs := func() int64 {
		before := r.storeB.loads.Load()
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				var id [16]byte
				_, _ = rand.Read(id[:])
				if _, err := r.b.VerificationKey(r.ctx, base64.RawURLEncoding.EncodeToString(id[:]), r.alg); err == nil {
					t.Error("a random kid verifies")
				}
			})
		}
		wg.Wait()
		return r.storeB.loads.Load() - before
	}
	if n := randomKIDs(); n != 0 {
		t.Fatalf("100 random kids right after a reload: %d loads, want 0", n)
	}
	r.clock.Advance(4 * time.Second)
	if n := randomKIDs(); n != 0 {
		t.Fatalf("100 random kids 4s after a reload: %d loads, want 0", n)
	}
	r.clock.Advance(time.Second)
	if n := randomKIDs(); n != 1 {
		t.Fatalf("100 random kids 5s after a reload: %d loads, want 1", n)
	}
}

// oldKeyVerifiesUntilRetain: the replaced key verifies on both replicas
// until Retain after its replacement, and not from then on.
func (r *rkRotation) oldKeyVerifiesUntilRetain(t *testing.T, rotatedAt time.Time, oldTok, oldKID, newTok, newKID string) {
	t.Helper()
	verifyOld := func() error {
		errs := []error{}
		for _, s := range []*Sessions{r.sa, r.sb} {
			if _, err := s.Verify(r.ctx, oldTok); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == 1 {
			t.Fatal("replicas disagree on the old key")
		}
		return errors.Join(errs...)
	}
	for _, at := range []time.Time{rotatedAt, rotatedAt.Add(rkRetain25h - time.Second)} {
		r.clock.Set(at)
		if err := verifyOld(); err != nil {
			t.Fatalf("old session at rotation+%v: %v", at.Sub(rotatedAt), err)
		}
	}
	r.clock.Set(rotatedAt.Add(rkRetain25h))
	if err := verifyOld(); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old session after Retain: %v", err)
	}
	if _, err := r.a.VerificationKey(r.ctx, oldKID, r.alg); err == nil {
		t.Fatal("old key verifies after Retain")
	}
	if _, err := r.sb.Verify(r.ctx, newTok); err != nil {
		t.Fatalf("new session: %v", err)
	}
	if rkKID(t, r.b) != newKID {
		t.Fatal("b signs with a replaced key")
	}
}

// nextRotationDropsIt: the next rotation (due: the new key is now older
// than Rotation) drops the expired key from the store, and a adopts b's
// key. It returns the stored set.
func (r *rkRotation) nextRotationDropsIt(t *testing.T, newKID string) (value string) {
	t.Helper()
	if err := r.b.rotateIfDue(r.ctx); err != nil {
		t.Fatal(err)
	}
	kids, value := rkStored(t, r.shared)
	if len(kids) != 2 || kids[1] != newKID {
		t.Fatalf("stored kids = %v, want [<newest> %s]", kids, newKID)
	}
	if err := r.a.rotateIfDue(r.ctx); err != nil || rkKID(t, r.a) != kids[0] {
		t.Fatalf("a rotated again instead of adopting b's key: %v", err)
	}
	return value
}

// noPrivateKeyLogged checks the rotations were logged, without any of the
// private keys of the stored set value.
func (r *rkRotation) noPrivateKeyLogged(t *testing.T, value string) {
	t.Helper()
	var st storedSessionKeys
	if err := json.Unmarshal([]byte(value), &st); err != nil {
		t.Fatal(err)
	}
	out := r.logs.String()
	if !strings.Contains(out, "new signing key") {
		t.Fatalf("rotation not logged: %s", out)
	}
	for _, k := range st.Keys {
		if strings.Contains(out, base64.StdEncoding.EncodeToString(k.PKCS8)) {
			t.Fatal("a private key was logged")
		}
	}
}

func TestRotatingKeysStoreStates(t *testing.T) {
	ctx := context.Background()

	t.Run("corrupt set is refused, not overwritten", func(t *testing.T) {
		clock := clocktest.New()
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
		clock := clocktest.New()
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
		clock := clocktest.New()
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
