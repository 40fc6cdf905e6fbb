package tokencache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
)

var newYork = store.Key{Group: "NEW YORK", PolicyHash: boston.PolicyHash}

// churn issues BOSTON's token and revokes it, as one member can in a loop,
// until a guard refuses; it returns the refusal and the tokens minted.
func churn(t *testing.T, c *Cache, up *fakeUpstream, max int) (*QuotaError, int64) {
	t.Helper()
	ctx := context.Background()
	for range max {
		e, _, err := c.Get(ctx, boston, time.Hour)
		if err == nil {
			_, err = c.Revoke(ctx, e.Token, only("BOSTON"))
		}
		var qe *QuotaError
		if errors.As(err, &qe) {
			return qe, up.mints.Load()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("%d issue-and-revoke rounds and no guard refused", max)
	return nil, 0
}

// Finding 3: one BOSTON user looping IssueCartoToken then RevokeToken{carto_token}
// spent the whole deployment's MAX_MINTS_PER_HOUR, and every other group was
// refused for the rest of the hour. A group now stops at its own budget (of
// mints, and of members' revocations); other groups and refreshes go on.
func TestAttackRevokeLoopSpendsEveryGroupsBudget(t *testing.T) {
	tests := []struct {
		name        string
		revocations int // MaxGroupRevocations
		limit       string
		mints       int64 // BOSTON's tokens minted before the refusal
	}{
		{"group mint budget", 0, "group BOSTON's limit of 5 CARTO token creations per 1h0m0s", 5},
		{"group revocation budget", 3, "group BOSTON's limit of 3 revocations of its CARTO token per 1h0m0s", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := clocktest.New()
				up := &fakeUpstream{}
				c := New(Config{Store: memstore.New(memstore.Config{Now: clk.Now}), Upstream: up, Now: clk.Now,
					MaxMints: 20, MaxGroupMints: 5, MaxGroupRevocations: tt.revocations})
				qe, minted := churn(t, c, up, 100)
				if !strings.Contains(qe.Error(), tt.limit) || qe.RetryAfter <= 0 || qe.RetryAfter > time.Hour {
					t.Fatalf("refusal %q (retry after %v), want one naming %q with the rest of the window", qe, qe.RetryAfter, tt.limit)
				}
				if minted != tt.mints {
					t.Fatalf("BOSTON minted %d tokens, want %d", minted, tt.mints)
				}
				ctx := context.Background()
				// The metrics' creation counter counts creations, not refusals.
				if n, err := c.cfg.Store.Count(ctx, CreationCounter, clk.Now(), time.Hour, 0); err != nil || n != minted {
					t.Fatalf("creation counter %d, %v; want the %d creations", n, err, minted)
				}
				ny, minted2, err := c.Get(ctx, newYork, time.Hour)
				if err != nil || !minted2 {
					t.Fatalf("NEW YORK after BOSTON's loop: %v", err)
				}
				// NEW YORK's refresh, when due, still mints.
				clk.Advance(40 * time.Minute)
				if _, _, err := c.Get(ctx, newYork, time.Hour); err != nil {
					t.Fatal(err)
				}
				synctest.Wait() // the background refresh has ended
				if cur, _, _ := c.cfg.Store.Current(ctx, newYork); cur.Token == ny.Token {
					t.Fatal("NEW YORK's refresh minted nothing")
				}
				// An admin's revocation is not counted against the group.
				if tt.revocations > 0 {
					b, _, _ := c.cfg.Store.Current(ctx, boston)
					if b.Token == "" {
						if b, _, err = c.Get(ctx, boston, time.Hour); err != nil {
							t.Fatal(err)
						}
					}
					admin := only("BOSTON")
					admin.Unlimited = true
					if _, err := c.Revoke(ctx, b.Token, admin); err != nil {
						t.Fatalf("an admin's revocation over the members' budget: %v", err)
					}
				}
			})
		})
	}
}

// Finding 3: user-driven mints can no longer starve background refreshes: a
// share of the hourly ceiling (and of the live-token ceiling) is kept for
// them, and refreshes do not count against a group's budget.
func TestAttackUserMintsStarveRefreshes(t *testing.T) {
	synctest.Test(t, testAttackUserMintsStarveRefreshes)
}

func testAttackUserMintsStarveRefreshes(t *testing.T) {
	clk := clocktest.New()
	up := &fakeUpstream{}
	c := New(Config{Store: memstore.New(memstore.Config{Now: clk.Now}), Upstream: up, Now: clk.Now,
		MaxMints: 10, MaxLiveTokens: 20, RefreshReservePercent: 20, MaxGroupMints: 1})
	ctx := context.Background()
	first, _, err := c.Get(ctx, boston, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Other groups spend every creation users may make: 8 of 10.
	for i := 1; ; i++ {
		_, _, err := c.Get(ctx, store.Key{Group: string(rune('A' + i)), PolicyHash: boston.PolicyHash}, time.Hour)
		if errors.Is(err, ErrQuotaExceeded) {
			if !strings.Contains(err.Error(), "2 of them kept for background refreshes") {
				t.Fatalf("refusal %q does not say that a share is kept for refreshes", err)
			}
			break
		}
		if err != nil || i > 10 {
			t.Fatalf("user mint %d: %v", i, err)
		}
	}
	if n := up.mints.Load(); n != 8 {
		t.Fatalf("users minted %d tokens, want 8 of 10", n)
	}
	// BOSTON's refresh is due: it mints, past BOSTON's group budget of 1
	// and past the users' share.
	clk.Advance(40 * time.Minute)
	if e, _, err := c.Get(ctx, boston, time.Hour); err != nil || e.Token != first.Token {
		t.Fatalf("while the refresh runs: %q, %v", e.Token, err)
	}
	synctest.Wait() // the background refresh has ended
	if cur, _, _ := c.cfg.Store.Current(ctx, boston); cur.Token == first.Token {
		t.Fatal("BOSTON's refresh minted nothing")
	}
	if n := up.mints.Load(); n != 9 {
		t.Fatalf("%d mints after the refresh, want 9", n)
	}
}
