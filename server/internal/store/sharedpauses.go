package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// SharedPauses shares through a Store the pauses an upstream asked for, one
// per endpoint: CARTO's Retry-After, which no replica may call through. Each
// pause is a secret (its end, in Unix nanoseconds) kept until its record
// expires. Its methods match what the CARTO client asks of a shared pause
// store.
type SharedPauses struct {
	Store Store
	Name  string // prefix of the secrets' and locks' names
}

func (s SharedPauses) name(endpoint string) string { return s.Name + ":" + endpoint }

// Pause returns when the pause on endpoint ends, if one is recorded.
func (s SharedPauses) Pause(ctx context.Context, endpoint string) (time.Time, bool, error) {
	sec, ok, err := s.Store.Secret(ctx, s.name(endpoint))
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	ns, err := strconv.ParseInt(string(sec.Value), 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("pause of %q: unreadable record", endpoint)
	}
	return time.Unix(0, ns), true, nil
}

// SetPause records a pause on endpoint until until, kept until keep.
func (s SharedPauses) SetPause(ctx context.Context, endpoint string, until, keep time.Time) error {
	return s.Store.PutSecret(ctx, s.name(endpoint), Secret{
		Value:     strconv.AppendInt(nil, until.UnixNano(), 10),
		ExpiresAt: keep,
	})
}

// ClearPause forgets the pause on endpoint unless it ends after until.
func (s SharedPauses) ClearPause(ctx context.Context, endpoint string, until time.Time) error {
	cur, ok, err := s.Pause(ctx, endpoint)
	if err != nil || !ok || cur.After(until) {
		return err
	}
	return s.Store.PutSecret(ctx, s.name(endpoint), Secret{ExpiresAt: time.Unix(0, 0)})
}

// TryProbe takes the lock that lets one replica probe endpoint after its
// pause.
func (s SharedPauses) TryProbe(ctx context.Context, endpoint string, ttl time.Duration) (func(), bool, error) {
	return tryLock(ctx, s.Store, "probe:"+s.name(endpoint), ttl)
}
