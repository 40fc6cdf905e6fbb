package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	defaultKeyRotation = 24 * time.Hour
	minKeyRotation     = time.Minute
	defaultKeyRetain   = 25 * time.Hour
	// maxKeyCheckEvery caps the interval between two reloads of the set by
	// Run, so a key another replica created is used for signing here soon.
	maxKeyCheckEvery = time.Minute
	// unknownKIDReloadEvery rate-limits the reloads that tokens naming an
	// unknown kid cause: made-up kids must not turn into one store load each.
	unknownKIDReloadEvery = 5 * time.Second
	// keyLockTTL bounds how long a replica that dies while rotating blocks
	// the others. Generating a key and saving the set take milliseconds.
	keyLockTTL = 10 * time.Second
	// keyStartWait is how long NewRotatingKeys waits for the replica holding
	// the lock to save the first key set: longer than keyLockTTL, so a holder
	// that died is outlived and the lock taken over.
	keyStartWait = 2 * keyLockTTL
	keyStartPoll = 50 * time.Millisecond
	// keySetVersion is the format of the stored set. A set of another
	// version is refused, never overwritten.
	keySetVersion = 1
)

// errNoSessionKey is the one answer for a kid that cannot verify here:
// unknown, expired or of another algorithm. It names neither kid nor key.
var errNoSessionKey = errors.New("no such session key")

// KeyStore keeps the session key set where every replica sees it.
// store.SharedSecret satisfies it; the store seals the value at rest.
type KeyStore interface {
	// Load returns the stored set, if any.
	Load(ctx context.Context) (value string, obtained, expires time.Time, ok bool, err error)
	// Save replaces the stored set.
	Save(ctx context.Context, value string, obtained, expires time.Time) error
	// TryLock takes the lock that lets one replica change the set at a time,
	// or reports acquired false at once if another replica holds it.
	TryLock(ctx context.Context, ttl time.Duration) (release func(), acquired bool, err error)
}

// RotatingKeysConfig configures RotatingKeys.
type RotatingKeysConfig struct {
	// Algorithm is "EdDSA" (Ed25519) or "ES256" (ECDSA on P-256).
	Algorithm string
	// Store shares the key set, private keys included, between replicas.
	Store KeyStore
	// Rotation is the age at which the signing key is replaced: 24h if zero,
	// at least 1m.
	Rotation time.Duration
	// Retain is how long a replaced key still verifies: 25h if zero. It must
	// be at least the session TTL plus leeway, or sessions signed just before
	// a rotation are refused before they expire.
	Retain time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Logger receives rotations and store failures; discarded if nil.
	Logger *slog.Logger
}

// RotatingKeys is a KeySource of asymmetric keys (Ed25519 or P-256) that
// rotate. Replicas share the key set through a KeyStore, and publish its
// public half as a JWKS, so other services can verify sessions offline.
//
// The newest key of the configured algorithm signs; every key of the set
// verifies, until Retain after it was replaced. Run reloads the set and
// rotates it. RotatingKeys is safe for concurrent use; signing and verifying
// with a known kid take a read lock and do no I/O.
type RotatingKeys struct {
	cfg      RotatingKeysConfig
	alg      string
	interval time.Duration

	mu  sync.RWMutex
	set *sessionKeySet // immutable: replaced whole, never changed

	// loading serializes loading the set with installing it, so that a slow
	// load never installs an older set over a newer one. It is a channel
	// (of capacity 1) so that waiting for it honours the context.
	loading chan struct{}
	// lastMissReload is when an unknown kid last caused a reload. Guarded by
	// loading.
	lastMissReload time.Time
}

var _ KeySource = (*RotatingKeys)(nil)

// NewRotatingKeys validates cfg and loads the key set. If the store holds
// none (or none of cfg.Algorithm), it creates the first key under the store's
// lock: one replica creates it, the others wait for it and load it.
func NewRotatingKeys(ctx context.Context, cfg RotatingKeysConfig) (*RotatingKeys, error) {
	var errs []error
	if cfg.Algorithm != jwt.SigningMethodEdDSA.Alg() && cfg.Algorithm != jwt.SigningMethodES256.Alg() {
		errs = append(errs, fmt.Errorf("session key algorithm %q is not EdDSA or ES256", cfg.Algorithm))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("session key store is required"))
	}
	switch {
	case cfg.Rotation == 0:
		cfg.Rotation = defaultKeyRotation
	case cfg.Rotation < minKeyRotation:
		errs = append(errs, fmt.Errorf("session key rotation must be at least %v", minKeyRotation))
	}
	switch {
	case cfg.Retain == 0:
		cfg.Retain = defaultKeyRetain
	case cfg.Retain < 0:
		errs = append(errs, errors.New("session key retention must not be negative"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	k := &RotatingKeys{
		cfg:      cfg,
		alg:      cfg.Algorithm,
		interval: min(cfg.Rotation/10, maxKeyCheckEvery),
		set:      newSessionKeySet(nil),
		loading:  make(chan struct{}, 1),
	}
	if err := k.start(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// start loads the set, or creates it if this replica wins the store's lock,
// or waits for the replica that did.
func (k *RotatingKeys) start(ctx context.Context) error {
	// Real time, not cfg.Now: this waits for another process.
	deadline := time.Now().Add(keyStartWait)
	for {
		found, err := k.reload(ctx)
		if err != nil {
			return err
		}
		if found && k.current().signing(k.alg, k.cfg.Now(), k.cfg.Retain) != nil {
			return nil
		}
		acquired, err := k.update(ctx)
		if err != nil {
			return err
		}
		if acquired {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("session keys: another replica holds the key store's lock and saved no key set")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(keyStartPoll):
		}
	}
}

// SigningKey implements KeySource: the newest key, its kid as ID.
func (k *RotatingKeys) SigningKey(context.Context) (SigningKey, error) {
	key := k.current().signing(k.alg, k.cfg.Now(), k.cfg.Retain)
	if key == nil {
		return SigningKey{}, errors.New("no session signing key")
	}
	return SigningKey{ID: key.kid, Method: key.method, Key: key.private}, nil
}

// VerificationKey implements KeySource: the public key of the set with this
// kid and algorithm, unless replaced Retain ago or more. An unknown kid
// reloads the set (at most once per 5s), in case another replica just
// rotated.
func (k *RotatingKeys) VerificationKey(ctx context.Context, kid, alg string) (any, error) {
	if kid == "" || alg != k.alg {
		return nil, errNoSessionKey
	}
	if pub, known := k.lookup(kid, alg); known {
		return verificationResult(pub)
	}
	if err := k.lockLoading(ctx); err != nil {
		return nil, err
	}
	defer k.unlockLoading()
	// The reload this call may have waited for can have brought the kid.
	if pub, known := k.lookup(kid, alg); known {
		return verificationResult(pub)
	}
	now := k.cfg.Now()
	if since := now.Sub(k.lastMissReload); !k.lastMissReload.IsZero() && since >= 0 && since < unknownKIDReloadEvery {
		return nil, errNoSessionKey
	}
	k.lastMissReload = now
	if _, err := k.reloadLocked(ctx); err != nil {
		return nil, err
	}
	pub, _ := k.lookup(kid, alg)
	return verificationResult(pub)
}

func verificationResult(pub crypto.PublicKey) (any, error) {
	if pub == nil {
		return nil, errNoSessionKey
	}
	return pub, nil
}

// lookup returns the public key of kid if it verifies now with alg. known
// reports whether the set holds kid at all: only an unknown kid is worth a
// reload.
func (k *RotatingKeys) lookup(kid, alg string) (pub crypto.PublicKey, known bool) {
	now := k.cfg.Now()
	key, known := k.current().byKID[kid]
	if !known || key.alg != alg || !key.verifiesAt(now, k.cfg.Retain) {
		return nil, known
	}
	return key.public, true
}

// Algorithms implements KeySource: the configured algorithm only, so that
// a token naming any other (HS256 with a public key as secret, none) is
// refused by the parser.
func (k *RotatingKeys) Algorithms() []string { return []string{k.alg} }

// JWKS returns the public keys that still verify, newest first, as a JSON
// Web Key Set (RFC 7517): {"keys":[{"kty","crv","x"[,"y"],"kid","alg","use"}]}.
// It never holds a private part.
func (k *RotatingKeys) JWKS(context.Context) ([]byte, error) {
	now := k.cfg.Now()
	doc := struct {
		Keys []sessionJWK `json:"keys"`
	}{Keys: []sessionJWK{}}
	for _, key := range k.current().keys {
		if key.verifiesAt(now, k.cfg.Retain) {
			doc.Keys = append(doc.Keys, key.jwk)
		}
	}
	return json.Marshal(doc)
}

func (k *RotatingKeys) current() *sessionKeySet {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.set
}

func (k *RotatingKeys) install(s *sessionKeySet) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.set = s
}
