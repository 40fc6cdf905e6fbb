package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/seal"
)

// Codec is how persistent stores write entries and secrets at rest: JSON,
// sealed with the store key and bound to the record it is stored under.
type Codec struct{ box *seal.Box }

// NewCodec returns a Codec sealing with box.
func NewCodec(box *seal.Box) Codec { return Codec{box: box} }

type entryJSON struct {
	Group      string    `json:"g"`
	PolicyHash string    `json:"p"`
	Token      string    `json:"t"`
	CreatedAt  time.Time `json:"c"`
	ExpiresAt  time.Time `json:"e"`
	RefreshAt  time.Time `json:"r"`
}

// SealEntry seals e for the record of its token id.
func (c Codec) SealEntry(e Entry) []byte {
	b, _ := json.Marshal(entryJSON{e.Key.Group, e.Key.PolicyHash, e.Token, e.CreatedAt, e.ExpiresAt, e.RefreshAt})
	return c.box.Seal(b, []byte("entry/"+TokenID(e.Token)))
}

// OpenEntry opens the entry stored under token id.
func (c Codec) OpenEntry(id string, sealed []byte) (Entry, error) {
	b, err := c.open(sealed, "entry/"+id)
	if err != nil {
		return Entry{}, err
	}
	var j entryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Entry{}, fmt.Errorf("decode entry: %w", err)
	}
	return Entry{Key: Key{j.Group, j.PolicyHash}, Token: j.Token, CreatedAt: j.CreatedAt, ExpiresAt: j.ExpiresAt, RefreshAt: j.RefreshAt}, nil
}

type secretJSON struct {
	Value     []byte    `json:"v"`
	Obtained  time.Time `json:"o"`
	ExpiresAt time.Time `json:"e"`
}

// SealSecret seals s for the record name.
func (c Codec) SealSecret(name string, s Secret) []byte {
	b, _ := json.Marshal(secretJSON(s))
	return c.box.Seal(b, []byte("secret/"+name))
}

// OpenSecret opens the secret stored under name.
func (c Codec) OpenSecret(name string, sealed []byte) (Secret, error) {
	b, err := c.open(sealed, "secret/"+name)
	if err != nil {
		return Secret{}, err
	}
	var j secretJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Secret{}, fmt.Errorf("decode secret: %w", err)
	}
	return Secret(j), nil
}

const keyCheckText = "tokenbroker store key check"

// KeyCheck is a value a store keeps so that opening it with another key
// fails at once, even while it holds no token.
func (c Codec) KeyCheck() []byte { return c.box.Seal([]byte(keyCheckText), []byte("keycheck")) }

// CheckKey verifies a stored KeyCheck value against the codec's key.
func (c Codec) CheckKey(stored []byte) error {
	b, err := c.open(stored, "keycheck")
	if err != nil {
		return err
	}
	if string(b) != keyCheckText {
		return ErrWrongKey
	}
	return nil
}

func (c Codec) open(sealed []byte, aad string) ([]byte, error) {
	b, err := c.box.Open(sealed, []byte(aad))
	switch {
	case errors.Is(err, seal.ErrWrongKey):
		return nil, ErrWrongKey
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", aad, err)
	}
	return b, nil
}
