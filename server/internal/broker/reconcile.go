package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// CartoLister lists the OAuth client's tokens at CARTO.
type CartoLister interface {
	ListTokens(ctx context.Context) ([]carto.APIToken, error)
}

// ReconcilerConfig configures a Reconciler.
type ReconcilerConfig struct {
	Cache    *tokencache.Cache
	Store    store.Store
	Policies Policies
	Carto    CartoLister
	Upstream tokencache.Upstream // deletes at CARTO
	// NamePrefix marks this deployment's tokens at CARTO: only those are
	// ever deleted as orphans.
	NamePrefix string
	// Interval between passes after the first, at start; 0 runs only that
	// first pass.
	Interval time.Duration
	// Grace is how old an unknown token must be before it is an orphan: a
	// replica may be between CARTO's answer and the store's write. 5 min
	// when zero.
	Grace  time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Reconciler keeps CARTO and the store in agreement. It deletes, at CARTO and
// in the store, the tokens of a policy a group no longer has (they carry
// permissions the group lost), and deletes the orphans: tokens named as this
// deployment's that the store does not know, left by a crash between
// CARTO's answer and the store's write.
type Reconciler struct {
	cfg ReconcilerConfig

	mu       sync.Mutex
	suspects map[string]bool // token ids unknown at the last pass, created at an unknown time
}

// Report is what one pass did.
type Report struct {
	Skipped  bool // another replica was reconciling
	Replaced int  // tokens of replaced policies deleted
	Orphans  int  // orphans deleted at CARTO
	Failed   int  // deletions that failed (retried at the next pass)
}

// NewReconciler returns a Reconciler.
func NewReconciler(cfg ReconcilerConfig) *Reconciler {
	if cfg.Grace <= 0 {
		cfg.Grace = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{cfg: cfg, suspects: map[string]bool{}}
}

// Run makes a pass at once and then every Interval, until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	for {
		rep, err := r.Once(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.cfg.Logger.Warn("reconciliation incomplete; it is retried at the next pass", "error", err, "replaced", rep.Replaced, "orphans", rep.Orphans)
		case rep.Replaced+rep.Orphans+rep.Failed > 0:
			r.cfg.Logger.Info("reconciliation", "replaced_policy_tokens_deleted", rep.Replaced, "orphans_deleted", rep.Orphans, "failed", rep.Failed)
		}
		if r.cfg.Interval <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.Interval):
		}
	}
}

// Once makes one pass, unless another replica is making one.
func (r *Reconciler) Once(ctx context.Context) (Report, error) {
	lock, err := r.cfg.Store.TryLock(ctx, "reconcile", 2*time.Minute)
	switch {
	case errors.Is(err, store.ErrLocked):
		return Report{Skipped: true}, nil
	case err != nil:
		return Report{}, err
	}
	defer lock.Release(context.WithoutCancel(ctx))

	var rep Report
	var errs []error
	if err := r.deleteReplaced(ctx, &rep); err != nil {
		errs = append(errs, err)
	}
	if err := r.deleteOrphans(ctx, &rep); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// deleteReplaced deletes the stored tokens whose policy is no longer their
// group's (or whose group has no policy any more).
func (r *Reconciler) deleteReplaced(ctx context.Context, rep *Report) error {
	entries, err := r.cfg.Store.Entries(ctx)
	if err != nil {
		return fmt.Errorf("list stored tokens: %w", err)
	}
	for _, e := range entries {
		if pol, err := r.cfg.Policies.For(e.Key.Group); err == nil && pol.Hash == e.Key.PolicyHash {
			continue
		}
		if err := r.cfg.Cache.Evict(ctx, e); err != nil {
			rep.Failed++
			r.cfg.Logger.Warn("token of a replaced policy not deleted", "group", e.Key.Group, "error", err)
			continue
		}
		rep.Replaced++
		r.cfg.Logger.Info("deleted a token of a replaced policy", "group", e.Key.Group, "policy", e.Key.PolicyHash[:min(12, len(e.Key.PolicyHash))])
	}
	return nil
}

// deleteOrphans deletes this deployment's tokens at CARTO that the store
// does not know, once they are older than Grace (or, when CARTO does not say
// when they were created, when a second pass still does not know them).
func (r *Reconciler) deleteOrphans(ctx context.Context, rep *Report) error {
	tokens, err := r.cfg.Carto.ListTokens(ctx)
	if err != nil {
		return fmt.Errorf("list tokens at CARTO: %w", err)
	}
	now := r.cfg.Now()
	seen := map[string]bool{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range tokens {
		if !strings.HasPrefix(t.Name, r.cfg.NamePrefix) || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
			continue
		}
		if _, known, err := r.cfg.Store.ByToken(ctx, t.Token); err != nil {
			return fmt.Errorf("look up a CARTO token: %w", err)
		} else if known {
			continue
		}
		id := store.TokenID(t.Token)
		old := !t.CreatedAt.IsZero() && now.Sub(t.CreatedAt) >= r.cfg.Grace
		if !old && !(t.CreatedAt.IsZero() && r.suspects[id]) {
			seen[id] = true // look again next pass
			continue
		}
		if err := r.cfg.Upstream.Delete(ctx, t.Token); err != nil {
			rep.Failed++
			seen[id] = true
			r.cfg.Logger.Warn("orphaned CARTO token not deleted", "name", t.Name, "error", err)
			continue
		}
		rep.Orphans++
		r.cfg.Logger.Info("deleted an orphaned CARTO token", "name", t.Name)
	}
	r.suspects = seen
	return nil
}
