package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// currentKey encodes a Key unambiguously: a group may hold any byte, so it
// is length-prefixed rather than separated.
func currentKey(k store.Key) []byte {
	b := make([]byte, 0, 4+len(k.Group)+len(k.PolicyHash))
	b = binary.BigEndian.AppendUint32(b, uint32(len(k.Group)))
	b = append(b, k.Group...)
	return append(b, k.PolicyHash...)
}

// entry opens the entry stored under token id, if any.
func (s *Store) entry(tx *bolt.Tx, id string) (store.Entry, bool, error) {
	sealed := tx.Bucket(bucketTokens).Get([]byte(id))
	if sealed == nil {
		return store.Entry{}, false, nil
	}
	e, err := s.codec.OpenEntry(id, sealed)
	if err != nil {
		return store.Entry{}, false, fmt.Errorf("token store %s: %w", s.path, err)
	}
	return e, true, nil
}

func (s *Store) live(t time.Time) bool { return s.now().Before(t) }

// Current returns the unexpired entry served for key, if any.
func (s *Store) Current(_ context.Context, key store.Key) (store.Entry, bool, error) {
	var (
		e  store.Entry
		ok bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketCurrent).Get(currentKey(key))
		if id == nil {
			return nil
		}
		var err error
		if e, ok, err = s.entry(tx, string(id)); err != nil {
			return err
		}
		// The pointers are not sealed: one altered on disk must not serve
		// a token minted for another group or policy.
		if ok && e.Key != key {
			return fmt.Errorf("token store %s: the current token of %q is recorded for %q: the file was altered", s.path, key, e.Key)
		}
		return nil
	})
	if err != nil || !ok || !s.live(e.ExpiresAt) {
		return store.Entry{}, false, err
	}
	return e, true, nil
}

// Put records e and makes it current for its key; the entry it replaces
// stays until it expires.
func (s *Store) Put(_ context.Context, e store.Entry) error {
	id := []byte(store.TokenID(e.Token))
	return s.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketTokens).Put(id, s.codec.SealEntry(e)); err != nil {
			return err
		}
		return tx.Bucket(bucketCurrent).Put(currentKey(e.Key), id)
	})
}

// ByToken returns the unexpired entry holding token, current or replaced.
func (s *Store) ByToken(_ context.Context, token string) (store.Entry, bool, error) {
	var (
		e  store.Entry
		ok bool
	)
	err := s.view(func(tx *bolt.Tx) (err error) {
		e, ok, err = s.entry(tx, store.TokenID(token))
		return err
	})
	if err != nil || !ok || !s.live(e.ExpiresAt) {
		return store.Entry{}, false, err
	}
	return e, true, nil
}

// Remove forgets the entry holding token, and its key's current pointer if
// that pointed to it.
func (s *Store) Remove(_ context.Context, token string) error {
	id := store.TokenID(token)
	return s.update(func(tx *bolt.Tx) error {
		sealed := tx.Bucket(bucketTokens).Get([]byte(id))
		if sealed == nil {
			return nil
		}
		e, err := s.codec.OpenEntry(id, sealed)
		if err == nil {
			return removeEntry(tx, id, e.Key)
		}
		// An unreadable record does not say its key: drop it and whatever
		// pointer leads to it.
		if err := tx.Bucket(bucketTokens).Delete([]byte(id)); err != nil {
			return err
		}
		cur := tx.Bucket(bucketCurrent)
		var stale [][]byte
		_ = cur.ForEach(func(k, v []byte) error {
			if string(v) == id {
				stale = append(stale, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range stale {
			if err := cur.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// removeEntry deletes the entry id of key, and key's current pointer if it
// points to id.
func removeEntry(tx *bolt.Tx, id string, key store.Key) error {
	if err := tx.Bucket(bucketTokens).Delete([]byte(id)); err != nil {
		return err
	}
	cur, ck := tx.Bucket(bucketCurrent), currentKey(key)
	if string(cur.Get(ck)) == id {
		return cur.Delete(ck)
	}
	return nil
}

// Entries returns every unexpired entry, current or replaced.
func (s *Store) Entries(context.Context) ([]store.Entry, error) {
	var out []store.Entry
	err := s.view(func(tx *bolt.Tx) error {
		now := s.now()
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			e, err := s.codec.OpenEntry(string(k), v)
			if err != nil {
				return fmt.Errorf("token store %s: %w", s.path, err)
			}
			if now.Before(e.ExpiresAt) {
				out = append(out, e)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
