package store

import (
	"context"
	"errors"
	"time"
)

// SharedSecret shares one named secret between replicas through a Store: the
// CARTO OAuth token, which one replica fetches and all use, or the session
// signing keys. Its methods match what the CARTO client and the session keys
// ask of a shared secret store.
type SharedSecret struct {
	Store Store
	Name  string
}

// Load returns the secret, if stored and unexpired.
func (s SharedSecret) Load(ctx context.Context) (string, time.Time, time.Time, bool, error) {
	sec, ok, err := s.Store.Secret(ctx, s.Name)
	if err != nil || !ok {
		return "", time.Time{}, time.Time{}, false, err
	}
	return string(sec.Value), sec.Obtained, sec.ExpiresAt, true, nil
}

// Save stores the secret until it expires.
func (s SharedSecret) Save(ctx context.Context, value string, obtained, expires time.Time) error {
	return s.Store.PutSecret(ctx, s.Name, Secret{Value: []byte(value), Obtained: obtained, ExpiresAt: expires})
}

// Drop forgets the secret if it still holds value.
func (s SharedSecret) Drop(ctx context.Context, value string) error {
	sec, ok, err := s.Store.Secret(ctx, s.Name)
	if err != nil || !ok || string(sec.Value) != value {
		return err
	}
	return s.Store.PutSecret(ctx, s.Name, Secret{ExpiresAt: time.Unix(0, 0)})
}

// TryLock takes the lock that lets one replica fetch the secret.
func (s SharedSecret) TryLock(ctx context.Context, ttl time.Duration) (func(), bool, error) {
	return tryLock(ctx, s.Store, "secret:"+s.Name, ttl)
}

// tryLock takes lock name of store for ttl, in the form the CARTO client
// asks of its shared stores: acquired is false (and no error) while another
// owner holds it, and release frees it.
func tryLock(ctx context.Context, store Store, name string, ttl time.Duration) (release func(), acquired bool, err error) {
	l, err := store.TryLock(ctx, name, ttl)
	switch {
	case errors.Is(err, ErrLocked):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return func() { _ = l.Release(context.Background()) }, true, nil
}
