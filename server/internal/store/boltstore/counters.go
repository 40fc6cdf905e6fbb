package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

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
