package tokencache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

// fakeUpstream mints numbered tokens. gate, when set, holds every mint until
// closed; fail makes mints fail.
type fakeUpstream struct {
	mints, deletes atomic.Int64
	gate           chan struct{}
	fail           atomic.Bool
	failDelete     atomic.Bool
	mu             sync.Mutex
	deleted        []string
}

var errUpstream = errors.New("upstream down")

func (f *fakeUpstream) Mint(ctx context.Context, key store.Key, _ time.Time) (string, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if f.fail.Load() {
		return "", errUpstream
	}
	return fmt.Sprintf("%s-token-%d", key.Group, f.mints.Add(1)), nil
}

func (f *fakeUpstream) Delete(_ context.Context, token string) error {
	if f.failDelete.Load() {
		return errUpstream
	}
	f.deletes.Add(1)
	f.mu.Lock()
	f.deleted = append(f.deleted, token)
	f.mu.Unlock()
	return nil
}

// failingStore fails every Put.
type failingStore struct{ *memstore.Store }

func (failingStore) Put(context.Context, store.Entry) error { return errors.New("disk full") }

var boston = store.Key{Group: "BOSTON", PolicyHash: "0123456789abcdef0123456789abcdef"}

func newTestCache(t *testing.T, up *fakeUpstream, clk *clocktest.Clock, st store.Store) *Cache {
	t.Helper()
	if st == nil {
		st = memstore.New(memstore.Config{Now: clk.Now})
	}
	c := New(Config{Store: st, Upstream: up, Now: clk.Now})
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// only allows revoking the tokens of one group.
func only(group string) Revoker { return Revoker{May: func(g string) bool { return g == group }} }

// watchedMemory is a memstore that claims to be shared: the test feeds its
// events by hand.
type watchedMemory struct {
	*memstore.Store
	failReads atomic.Bool
}

func (w *watchedMemory) Watch(ctx context.Context, _ func(store.Event)) error {
	<-ctx.Done()
	return ctx.Err()
}

func (w *watchedMemory) RevokedSessions(ctx context.Context) (map[string]time.Time, error) {
	if w.failReads.Load() {
		return nil, fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	}
	return w.Store.RevokedSessions(ctx)
}

// slowReads counts Current calls and holds them until gate closes.
type slowReads struct {
	store.Store
	reads atomic.Int64
	gate  chan struct{}
}

func (s *slowReads) Current(ctx context.Context, key store.Key) (store.Entry, bool, error) {
	s.reads.Add(1)
	<-s.gate
	return s.Store.Current(ctx, key)
}
