package broker

import (
	"context"
	"errors"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// TokenNamePrefix is how the name of every token a deployment of the broker
// creates at CARTO starts, so reconciliation can tell its tokens from any
// other of the same OAuth client (another deployment's included).
func TokenNamePrefix(deployment string) string { return "tokenbroker/" + deployment + "/" }

// CartoTokens is the part of the CARTO client the broker uses.
type CartoTokens interface {
	CreateToken(ctx context.Context, req carto.CreateTokenRequest) (carto.APIToken, error)
	DeleteToken(ctx context.Context, token string) error
}

// Upstream adapts the CARTO client to tokencache.Upstream: it mints a key's
// token with the grants of the key's current policy (Mintable: a group's,
// or a named-query audience's).
type Upstream struct {
	Carto      CartoTokens
	Policies   Policies
	NamePrefix string // TokenNamePrefix(deployment)
}

var _ tokencache.Upstream = Upstream{}

// Mint creates the token of key at CARTO.
func (u Upstream) Mint(ctx context.Context, key store.Key, expiresAt time.Time) (string, error) {
	pol, err := u.Policies.For(key.Group)
	if err != nil {
		return "", err
	}
	if pol.Hash != key.PolicyHash {
		// The policy changed while this mint was queued: the key's grants are
		// no longer the group's, so nothing may be minted for it.
		return "", refusal.New(ErrPermissionDenied, "the group's policy changed, retry")
	}
	grants := make([]carto.Grant, len(pol.Grants))
	for i, g := range pol.Grants {
		grants[i] = carto.Grant{ConnectionName: g.Connection, Source: g.Source}
	}
	tok, err := u.Carto.CreateToken(ctx, carto.CreateTokenRequest{
		Grants:      grants,
		AllowedAPIs: pol.AllowedAPIs,
		Referers:    pol.Referers,
		ExpiresAt:   expiresAt,
		Name:        u.NamePrefix + namedquery.DescribeKey(key.Group) + "/" + key.PolicyHash[:16],
	})
	if err != nil {
		return "", err
	}
	return tok.Token, nil
}

// Delete deletes a token at CARTO; one CARTO does not know is gone already.
func (u Upstream) Delete(ctx context.Context, token string) error {
	if err := u.Carto.DeleteToken(ctx, token); err != nil && !errors.Is(err, carto.ErrNotFound) {
		return err
	}
	return nil
}
