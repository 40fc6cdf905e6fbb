package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

// Run reloads the set every min(Rotation/10, 1m), and rotates it when the
// signing key is older than Rotation, until ctx ends.
func (k *RotatingKeys) Run(ctx context.Context) {
	t := time.NewTicker(k.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.tick(ctx)
		}
	}
}

// tick is one round of Run.
func (k *RotatingKeys) tick(ctx context.Context) {
	found, err := k.reload(ctx)
	if err != nil {
		k.cfg.Logger.WarnContext(ctx, "session keys: reload failed", "err", err)
		return
	}
	if !found {
		// The store lost the set: store this replica's again at once, before
		// a replica starting now creates a set of its own and the sessions
		// signed with these keys stop verifying.
		if _, err := k.update(ctx); err != nil {
			k.cfg.Logger.WarnContext(ctx, "session keys: restoring the key set failed", "err", err)
		}
		return
	}
	if err := k.rotateIfDue(ctx); err != nil {
		k.cfg.Logger.WarnContext(ctx, "session keys: rotation failed", "err", err)
	}
}

// rotateIfDue rotates the set if its signing key is older than Rotation.
// When another replica holds the store's lock it does nothing: that replica
// rotates, and the next reload brings its key.
func (k *RotatingKeys) rotateIfDue(ctx context.Context) error {
	if !k.current().due(k.alg, k.cfg.Now(), k.cfg.Rotation, k.cfg.Retain) {
		return nil
	}
	_, err := k.update(ctx)
	return err
}

// update takes the store's lock, re-loads the set (the in-memory one may be
// stale), adds a key if one is still due, drops the keys past Retain, and
// saves the result if it changed. acquired is false if another replica
// holds the lock.
func (k *RotatingKeys) update(ctx context.Context) (acquired bool, err error) {
	release, acquired, err := k.cfg.Store.TryLock(ctx, keyLockTTL)
	if err != nil {
		return false, fmt.Errorf("lock session key set: %w", err)
	}
	if !acquired {
		return false, nil
	}
	defer release()
	if err := k.lockLoading(ctx); err != nil {
		return true, err
	}
	defer k.unlockLoading()

	cur, found, err := k.load(ctx)
	if err != nil {
		return true, err
	}
	if !found {
		// Never stored (cur is empty then), or lost by the store: store what
		// this replica holds, so its sessions keep verifying everywhere.
		cur = k.current()
	}
	now := k.cfg.Now()
	next, added, err := cur.next(k.alg, now, k.cfg.Rotation, k.cfg.Retain)
	if err != nil {
		return true, err
	}
	if found && next == cur {
		k.install(cur)
		return true, nil
	}
	value, err := next.encode()
	if err != nil {
		return true, err
	}
	// The set as a whole never expires: its keys do, one by one.
	if err := k.cfg.Store.Save(ctx, value, now, now.AddDate(100, 0, 0)); err != nil {
		return true, fmt.Errorf("save session key set: %w", err)
	}
	k.install(next)
	if added != nil {
		k.cfg.Logger.InfoContext(ctx, "session keys: new signing key", "kid", added.kid, "alg", added.alg, "keys", len(next.keys))
	}
	return true, nil
}

// reload loads the set from the store and installs it. found is false if
// the store holds none; the keys in memory are kept then.
func (k *RotatingKeys) reload(ctx context.Context) (found bool, err error) {
	if err := k.lockLoading(ctx); err != nil {
		return false, err
	}
	defer k.unlockLoading()
	return k.reloadLocked(ctx)
}

// reloadLocked is reload with loading held.
func (k *RotatingKeys) reloadLocked(ctx context.Context) (found bool, err error) {
	set, found, err := k.load(ctx)
	if err != nil || !found {
		return false, err
	}
	k.install(set)
	return true, nil
}

// load reads and parses the stored set.
func (k *RotatingKeys) load(ctx context.Context) (*sessionKeySet, bool, error) {
	value, _, _, ok, err := k.cfg.Store.Load(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("load session key set: %w", err)
	}
	if !ok {
		return newSessionKeySet(nil), false, nil
	}
	set, err := decodeSessionKeySet(value)
	if err != nil {
		return nil, false, err
	}
	return set, true, nil
}

func (k *RotatingKeys) lockLoading(ctx context.Context) error {
	select {
	case k.loading <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *RotatingKeys) unlockLoading() { <-k.loading }

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

// sessionKey is one key pair of the set, parsed once.
type sessionKey struct {
	kid      string
	alg      string
	created  time.Time
	replaced time.Time // zero until a newer key replaces it
	method   jwt.SigningMethod
	private  crypto.Signer
	public   crypto.PublicKey
	pkcs8    []byte
	jwk      sessionJWK
}

// String names the key only, whatever prints it (%v included).
func (k *sessionKey) String() string { return "session key " + k.kid }

// verifiesAt reports whether the key still verifies at now.
func (k *sessionKey) verifiesAt(now time.Time, retain time.Duration) bool {
	return k.replaced.IsZero() || now.Before(k.replaced.Add(retain))
}

// sessionJWK is the public half of a key as a JWK (RFC 7517, 7518, 8037).
type sessionJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// sessionKeySet is the set of keys, newest first.
type sessionKeySet struct {
	keys  []*sessionKey
	byKID map[string]*sessionKey
}

func newSessionKeySet(keys []*sessionKey) *sessionKeySet {
	slices.SortStableFunc(keys, func(a, b *sessionKey) int { return b.created.Compare(a.created) })
	s := &sessionKeySet{keys: keys, byKID: make(map[string]*sessionKey, len(keys))}
	for _, k := range keys {
		s.byKID[k.kid] = k
	}
	return s
}

// signing returns the newest key of alg that still verifies, or nil.
func (s *sessionKeySet) signing(alg string, now time.Time, retain time.Duration) *sessionKey {
	for _, k := range s.keys {
		if k.alg == alg && k.verifiesAt(now, retain) {
			return k
		}
	}
	return nil
}

// due reports whether a new key of alg is needed.
func (s *sessionKeySet) due(alg string, now time.Time, rotation, retain time.Duration) bool {
	k := s.signing(alg, now, retain)
	return k == nil || now.Sub(k.created) >= rotation
}

// next returns the set as a rotation at now leaves it, or s itself if that
// changes nothing. If a key of alg is due, it adds one and marks replaced
// the keys it replaces: those of alg, and those of another algorithm older
// than rotation (left by replicas since moved to alg; the replicas still
// using it rotate theirs before that age, so two algorithms can coexist
// during a change without taking turns). Keys replaced retain ago go.
func (s *sessionKeySet) next(alg string, now time.Time, rotation, retain time.Duration) (next *sessionKeySet, added *sessionKey, err error) {
	changed := false
	keys := make([]*sessionKey, 0, len(s.keys)+1)
	due := s.due(alg, now, rotation, retain)
	if due {
		if added, err = generateSessionKey(alg, now); err != nil {
			return nil, nil, err
		}
		keys, changed = append(keys, added), true
	}
	for _, k := range s.keys {
		if !k.verifiesAt(now, retain) {
			changed = true
			continue
		}
		if due && k.replaced.IsZero() && (k.alg == alg || now.Sub(k.created) >= rotation) {
			c := *k
			c.replaced = now
			k = &c
		}
		keys = append(keys, k)
	}
	if !changed {
		return s, nil, nil
	}
	return newSessionKeySet(keys), added, nil
}

// storedSessionKeys is the stored form of the set. The store seals it.
type storedSessionKeys struct {
	Version int                `json:"version"`
	Keys    []storedSessionKey `json:"keys"`
}

type storedSessionKey struct {
	KID      string    `json:"kid"`
	Alg      string    `json:"alg"`
	Created  time.Time `json:"created"`
	Replaced time.Time `json:"replaced,omitzero"`
	PKCS8    []byte    `json:"pkcs8"` // base64 in JSON
}

func (s *sessionKeySet) encode() (string, error) {
	st := storedSessionKeys{Version: keySetVersion, Keys: make([]storedSessionKey, 0, len(s.keys))}
	for _, k := range s.keys {
		st.Keys = append(st.Keys, storedSessionKey{KID: k.kid, Alg: k.alg, Created: k.created, Replaced: k.replaced, PKCS8: k.pkcs8})
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", errors.New("encode session key set")
	}
	return string(b), nil
}

// decodeSessionKeySet parses a stored set. Its errors never wrap those of
// the decoders, which could quote the value, private keys included.
func decodeSessionKeySet(value string) (*sessionKeySet, error) {
	var st storedSessionKeys
	if err := json.Unmarshal([]byte(value), &st); err != nil {
		return nil, errors.New("stored session key set is not valid JSON")
	}
	if st.Version != keySetVersion {
		return nil, fmt.Errorf("stored session key set has version %d, not %d", st.Version, keySetVersion)
	}
	keys := make([]*sessionKey, 0, len(st.Keys))
	seen := make(map[string]bool, len(st.Keys))
	for i, sk := range st.Keys {
		if sk.KID == "" || seen[sk.KID] {
			return nil, fmt.Errorf("stored session key %d: missing or duplicate kid", i)
		}
		seen[sk.KID] = true
		k, err := parseSessionKey(sk.KID, sk.Alg, sk.Created, sk.Replaced, sk.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("stored session key %q: %w", sk.KID, err)
		}
		keys = append(keys, k)
	}
	return newSessionKeySet(keys), nil
}

// generateSessionKey makes a key of alg with a random kid: 16 bytes,
// unpredictable, saying nothing of when or where it was made.
func generateSessionKey(alg string, now time.Time) (*sessionKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case jwt.SigningMethodEdDSA.Alg():
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case jwt.SigningMethodES256.Alg():
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("unsupported session key algorithm %q", alg)
	}
	if err != nil {
		return nil, errors.New("generate session key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, errors.New("encode session key")
	}
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand does not fail on supported platforms
	return parseSessionKey(base64.RawURLEncoding.EncodeToString(id[:]), alg, now, time.Time{}, der)
}

// parseSessionKey builds a key from its PKCS#8 private key, which must be of
// alg.
func parseSessionKey(kid, alg string, created, replaced time.Time, der []byte) (*sessionKey, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("invalid PKCS#8 private key")
	}
	k := &sessionKey{kid: kid, alg: alg, created: created, replaced: replaced, pkcs8: der}
	b64 := base64.RawURLEncoding.EncodeToString
	switch alg {
	case jwt.SigningMethodEdDSA.Alg():
		priv, ok := parsed.(ed25519.PrivateKey)
		if !ok {
			return nil, errors.New("not an Ed25519 key")
		}
		pub := priv.Public().(ed25519.PublicKey)
		k.method, k.private, k.public = jwt.SigningMethodEdDSA, priv, pub
		k.jwk = sessionJWK{Kty: "OKP", Crv: "Ed25519", X: b64(pub)}
	case jwt.SigningMethodES256.Alg():
		priv, ok := parsed.(*ecdsa.PrivateKey)
		if !ok || priv.Curve != elliptic.P256() {
			return nil, errors.New("not a P-256 key")
		}
		point, err := priv.PublicKey.Bytes() // 0x04 || x || y, 32 bytes each
		if err != nil {
			return nil, errors.New("invalid P-256 public key")
		}
		k.method, k.private, k.public = jwt.SigningMethodES256, priv, &priv.PublicKey
		k.jwk = sessionJWK{Kty: "EC", Crv: "P-256", X: b64(point[1:33]), Y: b64(point[33:])}
	default:
		return nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
	k.jwk.Kid, k.jwk.Alg, k.jwk.Use = kid, alg, "sig"
	return k, nil
}
