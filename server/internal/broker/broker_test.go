package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/store/memstore"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

type fakeCarto struct {
	created   []carto.CreateTokenRequest
	deleteErr error
}

func (f *fakeCarto) CreateToken(_ context.Context, req carto.CreateTokenRequest) (carto.APIToken, error) {
	f.created = append(f.created, req)
	return carto.APIToken{Token: "tok"}, nil
}

func (f *fakeCarto) DeleteToken(context.Context, string) error { return f.deleteErr }

func policies(t *testing.T) *policy.Set {
	t.Helper()
	ref := policy.Reference()
	s, err := policy.NewSet(policy.SetConfig{Default: &ref})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUpstreamMint(t *testing.T) {
	f := &fakeCarto{}
	pols := policies(t)
	up := Upstream{Carto: f, Policies: pols, NamePrefix: TokenNamePrefix("test")}
	p, _ := pols.For("O'BRIEN")
	exp := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if _, err := up.Mint(context.Background(), store.Key{Group: "O'BRIEN", PolicyHash: p.Hash}, exp); err != nil {
		t.Fatal(err)
	}
	req := f.created[0]
	if req.Grants[0].Source != p.Grants[0].Source || req.Grants[0].ConnectionName != "carto_dw" || !req.ExpiresAt.Equal(exp) ||
		req.AllowedAPIs[0] != "maps" || req.Name != "tokenbroker/test/O'BRIEN/"+p.Hash[:16] {
		t.Fatalf("create request %+v", req)
	}
	// A key whose hash is no longer the group's policy mints nothing: it
	// would carry permissions the group no longer has.
	_, err := up.Mint(context.Background(), store.Key{Group: "O'BRIEN", PolicyHash: "stale"}, exp)
	if !errors.Is(err, ErrPermissionDenied) || len(f.created) != 1 {
		t.Fatalf("stale key: %v, %d creations", err, len(f.created))
	}
}

func TestUpstreamDelete(t *testing.T) {
	for _, tc := range []struct {
		err, want error
	}{
		{nil, nil},
		{&carto.Error{Kind: carto.ErrNotFound}, nil}, // gone already
		{&carto.Error{Kind: carto.ErrUnavailable}, carto.ErrUnavailable},
	} {
		err := Upstream{Carto: &fakeCarto{deleteErr: tc.err}}.Delete(context.Background(), "t")
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("delete with CARTO answering %v: %v", tc.err, err)
		}
	}
}

func TestIssueAndRevokeRules(t *testing.T) {
	pols := policies(t)
	store := memstore.New(memstore.Config{})
	b := New(Config{
		Policies: pols,
		Cache:    tokencache.New(tokencache.Config{Store: store, Upstream: Upstream{Carto: &fakeCarto{}, Policies: pols}}),
	})
	ctx := context.Background()
	p := auth.Principal{Kind: auth.KindUser, Subject: "u", Group: "BOSTON", SessionID: "s1", SessionExpiry: time.Now().Add(time.Hour)}
	if _, err := b.IssueCartoToken(ctx, p, "NEW YORK"); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("another group: %v", err)
	}
	tok, err := b.IssueCartoToken(ctx, p, "BOSTON")
	if err != nil || tok.Token != "tok" || !tok.Minted || tok.Policy.Group != "BOSTON" {
		t.Fatalf("issue: %+v, %v", tok, err)
	}
	if _, err := b.RevokeCartoToken(ctx, p, ""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty token: %v", err)
	}
	if _, err := b.RevokeSession(ctx, auth.Principal{Group: "BOSTON"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no session: %v", err)
	}
	until, err := b.RevokeSession(ctx, p)
	if err != nil || !until.Equal(p.SessionExpiry) {
		t.Fatalf("revoke session: %v, %v", until, err)
	}
	if r, _ := store.RevokedSessions(ctx); r["s1"].IsZero() {
		t.Fatal("session not recorded as revoked")
	}
	if _, err := b.Login(ctx, "", "x", ""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty username: %v", err)
	}
}
