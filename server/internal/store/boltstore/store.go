// Package boltstore is the embedded default store.Store: one bbolt file
// on local disk, written with an fsync on every commit, so that a broker
// restarted (even by kill -9) re-mints nothing and forgets no revoked
// session. Tokens and secrets are sealed with the store key (store.Codec)
// before they reach the disk.
//
// A bbolt file serves one process: Open fails while another process holds
// the file, and the locks TryLock hands out exist in this process only. To
// run several brokers, use the Redis store.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tokenbroker/tokenbroker/server/internal/seal"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Config configures a Store.
type Config struct {
	Path string           // the bbolt file; created with mode 0600 if missing
	Key  []byte           // 32-byte store key (tokens and secrets are sealed with it)
	Now  func() time.Time // time.Now when nil; every expiry decision uses it
	// OpenTimeout bounds the wait for the file lock held by another process;
	// 1s when zero.
	OpenTimeout time.Duration
}

// The file's buckets. Their names are the file format: do not change them.
var (
	bucketTokens   = []byte("tokens")   // token id -> Codec.SealEntry
	bucketCurrent  = []byte("current")  // currentKey(key) -> token id
	bucketSessions = []byte("sessions") // session id -> until (unix ms, 8 bytes big-endian)
	bucketSecrets  = []byte("secrets")  // name -> Codec.SealSecret
	bucketCounters = []byte("counters") // name NUL windowKey(start) -> count (8 bytes big-endian)
	bucketMeta     = []byte("meta")     // metaKeyCheck -> Codec.KeyCheck

	allBuckets = [][]byte{bucketTokens, bucketCurrent, bucketSessions, bucketSecrets, bucketCounters, bucketMeta}

	metaKeyCheck = []byte("keycheck")
)

// pruneEvery is how many writes pass between sweeps of expired records.
const pruneEvery = 256

// errClosed is returned by every method called after Close.
var errClosed = fmt.Errorf("%w: the bbolt store is closed", store.ErrUnavailable)

// Store is a store.Store kept in a bbolt file. It is safe for
// concurrent use within one process.
type Store struct {
	db    *bolt.DB
	path  string
	codec store.Codec
	now   func() time.Time

	closed atomic.Bool
	writes atomic.Uint64

	locks *store.LocalLocks
}

var _ store.Store = (*Store)(nil)

// Open opens the store at cfg.Path, creating it if missing. It fails with
// an error wrapping store.ErrWrongKey if the file was written with
// another key, and with a clear error if another process holds the file.
func Open(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("token store: no path for the bbolt file")
	}
	box, err := seal.New(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("token store %s: %w", cfg.Path, err)
	}
	timeout := cfg.OpenTimeout
	if timeout <= 0 {
		timeout = time.Second // bbolt would wait forever on 0
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: timeout})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("token store %s is in use by another process, most likely another broker (its lock was not released within %s): a bbolt file serves one broker at a time; stop the other one, give this one its own file, or run several replicas on Redis (REDIS_URL)", cfg.Path, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("token store %s is not a bbolt database, or is damaged: %w", cfg.Path, err)
	case err != nil:
		return nil, fmt.Errorf("token store %s: %w", cfg.Path, err)
	}
	s := &Store{
		db:    db,
		path:  cfg.Path,
		codec: store.NewCodec(box),
		now:   cfg.Now,
		locks: store.NewLocalLocks(cfg.Now),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := db.Update(s.init); err != nil {
		db.Close()
		return nil, fmt.Errorf("token store %s: %w", cfg.Path, err)
	}
	return s, nil
}

// init creates the buckets, checks (or records) the key, and forgets what
// expired while the broker was down.
func (s *Store) init(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if check := meta.Get(metaKeyCheck); check != nil {
		if err := s.codec.CheckKey(check); err != nil {
			return err
		}
	} else if err := meta.Put(metaKeyCheck, s.codec.KeyCheck()); err != nil {
		return err
	}
	return s.sweep(tx)
}

// Close closes the file. Closing twice is harmless.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.db.Close() // waits for transactions under way
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	if s.closed.Load() {
		return errClosed
	}
	var fnErr error
	err := s.db.View(func(tx *bolt.Tx) error { fnErr = fn(tx); return fnErr })
	return s.dbErr(err, fnErr)
}

// update runs fn in a write transaction, committed (and fsynced) when fn
// succeeds, and counts the write: every pruneEvery writes, the same
// transaction sweeps what expired.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	if s.closed.Load() {
		return errClosed
	}
	var fnErr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		if fnErr = fn(tx); fnErr != nil {
			return fnErr
		}
		if s.writes.Add(1)%pruneEvery == 0 {
			fnErr = s.sweep(tx)
		}
		return fnErr
	})
	return s.dbErr(err, fnErr)
}

// dbErr returns fn's own errors as they are, and reports failures of the
// database itself (closed, or a disk that fails the commit) as unavailable.
func (s *Store) dbErr(err, fnErr error) error {
	switch {
	case err == nil || fnErr != nil:
		return err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return errClosed // Close won a race with the caller's check
	}
	return fmt.Errorf("%w: %s: %w", store.ErrUnavailable, s.path, err)
}

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

// windowKey encodes a window start so that keys sort as times do (the sign
// bit flipped), which lets Count drop a counter's old windows from the front.
func windowKey(startNano int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(startNano)^(1<<63))
}

// Count adds delta to counter name in the window of length window that
// contains at, persisted so a restart resets no limit.
func (s *Store) Count(_ context.Context, name string, at time.Time, window time.Duration, delta int64) (int64, error) {
	start := at.Truncate(window).UnixNano()
	prefix := append([]byte(name), 0)
	var n int64
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		k := append(bytes.Clone(prefix), windowKey(start)...)
		if v := b.Get(k); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("token store %s: counter %q is corrupt", s.path, name)
			}
			n = int64(binary.BigEndian.Uint64(v))
		}
		n += delta
		if err := b.Put(k, binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
			return err
		}
		// This counter's windows before the previous one are never asked again.
		oldest := append(bytes.Clone(prefix), windowKey(start-int64(window))...)
		var old [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, oldest) < 0; k, _ = c.Next() {
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

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

// TryLock takes the lock name for ttl, or returns store.ErrLocked if
// another owner holds it. One process serves the file, so locks live in
// memory.
func (s *Store) TryLock(_ context.Context, name string, ttl time.Duration) (store.Lock, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	l, err := s.locks.TryLock(name, ttl)
	if err != nil {
		return nil, err
	}
	return lock{Lock: l, s: s}, nil
}

// lock refuses extensions once the store is closed. Release still works:
// releasing is what a shutting-down holder does.
type lock struct {
	store.Lock
	s *Store
}

func (l lock) Extend(ctx context.Context, ttl time.Duration) error {
	if l.s.closed.Load() {
		return errClosed
	}
	return l.Lock.Extend(ctx, ttl)
}
