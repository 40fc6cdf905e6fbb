package auth

import (
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
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// This file holds the session key set itself, which does no I/O: its keys,
// which one signs, what a rotation changes, and its stored form (JSON with
// PKCS#8 private keys, sealed by the store).

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
