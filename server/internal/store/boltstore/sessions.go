package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

func unixMilli(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixMilli())) }

func decodeUnixMilli(b []byte) (time.Time, bool) {
	if len(b) != 8 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b))), true
}

// RevokeSession records that session id is revoked until the given time,
// keeping the later time if it was already revoked.
func (s *Store) RevokeSession(_ context.Context, id string, until time.Time) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if old, ok := decodeUnixMilli(b.Get([]byte(id))); ok && !until.After(old) {
			return nil
		}
		return b.Put([]byte(id), unixMilli(until))
	})
}

// RevokedSessions returns every revocation not yet past its time.
func (s *Store) RevokedSessions(context.Context) (map[string]time.Time, error) {
	out := make(map[string]time.Time)
	err := s.view(func(tx *bolt.Tx) error {
		now := s.now()
		return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			until, ok := decodeUnixMilli(v)
			if !ok {
				return fmt.Errorf("token store %s: session revocation %q is corrupt", s.path, k)
			}
			if now.Before(until) {
				out[string(k)] = until
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
