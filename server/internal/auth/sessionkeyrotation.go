package auth

import (
	"context"
	"fmt"
	"time"
)

// This file keeps a replica's session key set in step with the store: Run's
// periodic reload and rotation, and update, which changes the stored set
// under the store's lock.

// Run reloads the set every min(Rotation/10, 1m), and rotates it when the
// signing key is older than Rotation, until ctx ends.
func (k *RotatingKeys) Run(ctx context.Context) {
	t := time.NewTicker(k.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.tick(ctx)
		}
	}
}

// tick is one round of Run.
func (k *RotatingKeys) tick(ctx context.Context) {
	found, err := k.reload(ctx)
	if err != nil {
		k.cfg.Logger.WarnContext(ctx, "session keys: reload failed", "err", err)
		return
	}
	if !found {
		// The store lost the set: store this replica's again at once, before
		// a replica starting now creates a set of its own and the sessions
		// signed with these keys stop verifying.
		if _, err := k.update(ctx); err != nil {
			k.cfg.Logger.WarnContext(ctx, "session keys: restoring the key set failed", "err", err)
		}
		return
	}
	if err := k.rotateIfDue(ctx); err != nil {
		k.cfg.Logger.WarnContext(ctx, "session keys: rotation failed", "err", err)
	}
}

// rotateIfDue rotates the set if its signing key is older than Rotation.
// When another replica holds the store's lock it does nothing: that replica
// rotates, and the next reload brings its key.
func (k *RotatingKeys) rotateIfDue(ctx context.Context) error {
	if !k.current().due(k.alg, k.cfg.Now(), k.cfg.Rotation, k.cfg.Retain) {
		return nil
	}
	_, err := k.update(ctx)
	return err
}

// update takes the store's lock, re-loads the set (the in-memory one may be
// stale), adds a key if one is still due, drops the keys past Retain, and
// saves the result if it changed. acquired is false if another replica
// holds the lock.
func (k *RotatingKeys) update(ctx context.Context) (acquired bool, err error) {
	release, acquired, err := k.cfg.Store.TryLock(ctx, keyLockTTL)
	if err != nil {
		return false, fmt.Errorf("lock session key set: %w", err)
	}
	if !acquired {
		return false, nil
	}
	defer release()
	if err := k.lockLoading(ctx); err != nil {
		return true, err
	}
	defer k.unlockLoading()

	cur, found, err := k.load(ctx)
	if err != nil {
		return true, err
	}
	if !found {
		// Never stored (cur is empty then), or lost by the store: store what
		// this replica holds, so its sessions keep verifying everywhere.
		cur = k.current()
	}
	now := k.cfg.Now()
	next, added, err := cur.next(k.alg, now, k.cfg.Rotation, k.cfg.Retain)
	if err != nil {
		return true, err
	}
	if found && next == cur {
		k.install(cur)
		return true, nil
	}
	value, err := next.encode()
	if err != nil {
		return true, err
	}
	// The set as a whole never expires: its keys do, one by one.
	if err := k.cfg.Store.Save(ctx, value, now, now.AddDate(100, 0, 0)); err != nil {
		return true, fmt.Errorf("save session key set: %w", err)
	}
	k.install(next)
	if added != nil {
		k.cfg.Logger.InfoContext(ctx, "session keys: new signing key", "kid", added.kid, "alg", added.alg, "keys", len(next.keys))
	}
	return true, nil
}

// reload loads the set from the store and installs it. found is false if
// the store holds none; the keys in memory are kept then.
func (k *RotatingKeys) reload(ctx context.Context) (found bool, err error) {
	if err := k.lockLoading(ctx); err != nil {
		return false, err
	}
	defer k.unlockLoading()
	return k.reloadLocked(ctx)
}

// reloadLocked is reload with loading held.
func (k *RotatingKeys) reloadLocked(ctx context.Context) (found bool, err error) {
	set, found, err := k.load(ctx)
	if err != nil || !found {
		return false, err
	}
	k.install(set)
	return true, nil
}

// load reads and parses the stored set.
func (k *RotatingKeys) load(ctx context.Context) (*sessionKeySet, bool, error) {
	value, _, _, ok, err := k.cfg.Store.Load(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("load session key set: %w", err)
	}
	if !ok {
		return newSessionKeySet(nil), false, nil
	}
	set, err := decodeSessionKeySet(value)
	if err != nil {
		return nil, false, err
	}
	return set, true, nil
}

func (k *RotatingKeys) lockLoading(ctx context.Context) error {
	select {
	case k.loading <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *RotatingKeys) unlockLoading() { <-k.loading }
