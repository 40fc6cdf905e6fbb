package boltstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Secret returns the unexpired secret stored under name.
func (s *Store) Secret(_ context.Context, name string) (store.Secret, bool, error) {
	var (
		sec store.Secret
		ok  bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		sealed := tx.Bucket(bucketSecrets).Get([]byte(name))
		if sealed == nil {
			return nil
		}
		var err error
		if sec, err = s.codec.OpenSecret(name, sealed); err != nil {
			return fmt.Errorf("token store %s: %w", s.path, err)
		}
		ok = true
		return nil
	})
	if err != nil || !ok || !s.live(sec.ExpiresAt) {
		return store.Secret{}, false, err
	}
	return sec, true, nil
}

// PutSecret stores a secret under name until its ExpiresAt.
func (s *Store) PutSecret(_ context.Context, name string, sec store.Secret) error {
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSecrets).Put([]byte(name), s.codec.SealSecret(name, sec))
	})
}
