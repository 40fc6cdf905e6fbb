package boltstore

import (
	"bytes"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// sweep deletes expired tokens (with their current pointers), session
// revocations and secrets, so the file does not grow forever. A record it
// cannot read is left for the reads to report.
func (s *Store) sweep(tx *bolt.Tx) error {
	now := s.now()
	type expiredEntry struct {
		id  string
		key store.Key
	}
	var entries []expiredEntry
	_ = tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
		if e, err := s.codec.OpenEntry(string(k), v); err == nil && !now.Before(e.ExpiresAt) {
			entries = append(entries, expiredEntry{string(k), e.Key})
		}
		return nil
	})
	for _, e := range entries {
		if err := removeEntry(tx, e.id, e.key); err != nil {
			return err
		}
	}

	var sessions, secrets [][]byte
	_ = tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		if until, ok := decodeUnixMilli(v); ok && !now.Before(until) {
			sessions = append(sessions, bytes.Clone(k))
		}
		return nil
	})
	_ = tx.Bucket(bucketSecrets).ForEach(func(k, v []byte) error {
		if sec, err := s.codec.OpenSecret(string(k), v); err == nil && !now.Before(sec.ExpiresAt) {
			secrets = append(secrets, bytes.Clone(k))
		}
		return nil
	})
	for _, k := range sessions {
		if err := tx.Bucket(bucketSessions).Delete(k); err != nil {
			return err
		}
	}
	for _, k := range secrets {
		if err := tx.Bucket(bucketSecrets).Delete(k); err != nil {
			return err
		}
	}
	return nil
}
