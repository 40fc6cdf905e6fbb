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
