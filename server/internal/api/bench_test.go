package api

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/audit"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

type instantUpstream struct{}

func (instantUpstream) Mint(context.Context, store.Key, time.Time) (string, error) {
	return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhIjoiYWNfc2ltIiwianRpIjoiYzVmNmU0ZmMifQ.d5lY7RXBKBFHUfFJlo_ijLkotlLJLL4Hy1PUynL_p3Q", nil
}

func (instantUpstream) Delete(context.Context, string) error { return nil }

// BenchmarkIssueCartoTokenHit: the service's work for a cache hit, after
// the interceptors: policy, cache, the audit event (JSON, to a discarding
// writer), the answer.
func BenchmarkIssueCartoTokenHit(b *testing.B) {
	ref := policy.Reference()
	pols, _ := policy.NewSet(policy.SetConfig{Default: &ref})
	cache := tokencache.New(tokencache.Config{Store: memstore.New(memstore.Config{}), Upstream: instantUpstream{}})
	svc := NewService(Config{Broker: broker.New(broker.Config{Policies: pols, Cache: cache}), Logger: slog.New(slog.DiscardHandler),
		Audit: audit.New(slog.NewJSONHandler(io.Discard, nil))})
	ctx := auth.WithPrincipal(context.Background(), auth.Principal{Kind: auth.KindUser, Subject: "user.boston@acme.com", Group: "BOSTON", SessionID: "s"})
	req := &tokenbrokerv1.IssueCartoTokenRequest{}
	if _, err := svc.IssueCartoToken(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.IssueCartoToken(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
