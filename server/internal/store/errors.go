package store

import "errors"

// The store's errors, for errors.Is.
var (
	// ErrUnavailable wraps every failure to reach a store (Redis down, say).
	ErrUnavailable = errors.New("token store unavailable")
	// ErrLocked is returned by TryLock when another owner holds the lock.
	ErrLocked = errors.New("lock held by another owner")
	// ErrLockLost is returned by Lock.Extend when the lock expired or passed
	// to another owner.
	ErrLockLost = errors.New("lock lost")
	// ErrWrongKey is returned when a store holds data sealed with another key.
	ErrWrongKey = errors.New("the store's data was encrypted with a different key: check the store key (TOKENBROKER_STORE_KEY)")
)
