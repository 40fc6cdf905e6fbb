package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// identity is who may call: the user store, the broker's sessions, the
// verifier of every token accepted, and the services identified by client
// certificates.
type identity struct {
	users    *auth.Users
	sessions *auth.Sessions
	rotating *auth.RotatingKeys // asymmetric session keys; nil with HS256
	authn    *auth.Router
	services *auth.Services // nil when none are configured
}

// newIdentity builds identity: the session keys (kept in the store with
// asymmetric sessions), the configured identity providers (their keys
// fetched now, then refreshed in the background), and the router of their
// verifiers, which asks the token cache whether a session was revoked.
func (a *App) newIdentity(ctx context.Context) (identity, error) {
	cfg := a.cfg
	users := cfg.Built.Users
	if err := users.Prepare(); err != nil {
		return identity{}, err
	}
	keys, rotating, err := a.sessionKeys(ctx)
	if err != nil {
		return identity{}, err
	}
	sessions, err := auth.NewSessions(auth.SessionConfig{
		Keys:     keys,
		Issuer:   cfg.SessionIssuer,
		Audience: cfg.SessionAudience,
		TTL:      cfg.SessionTTL,
		Leeway:   cfg.SessionLeeway,
	})
	if err != nil {
		return identity{}, err
	}
	verifiers := []auth.Verifier{sessions}
	for _, idp := range cfg.IdentityProviders {
		idp.Logger = a.log
		v, err := auth.NewIdP(a.bg, idp)
		if err != nil {
			return identity{}, idpError(cfg.ConfigFile, idp, err)
		}
		verifiers = append(verifiers, v)
	}
	authn, err := auth.NewRouter(auth.RouterConfig{Verifiers: verifiers, Revocations: auth.RevocationsFunc(a.cache.SessionRevoked)})
	if err != nil {
		return identity{}, err
	}
	return identity{users: users, sessions: sessions, rotating: rotating, authn: authn, services: cfg.Built.Services}, nil
}

// sessionKeys returns what sessions are signed with: JWT_SECRET (HS256), or
// asymmetric keys rotated in the store and shared by the replicas.
func (a *App) sessionKeys(ctx context.Context) (auth.KeySource, *auth.RotatingKeys, error) {
	if a.cfg.SessionAlg == "" || a.cfg.SessionAlg == "HS256" {
		return auth.HMACKey(a.cfg.JWTSecret), nil, nil
	}
	rk, err := auth.NewRotatingKeys(ctx, auth.RotatingKeysConfig{
		Algorithm: a.cfg.SessionAlg,
		Store:     store.SharedSecret{Store: a.store, Name: "session-keys"},
		Rotation:  a.cfg.SessionKeyRotation,
		// A replaced key verifies every session it signed until it expires.
		Retain: a.cfg.SessionTTL + a.cfg.SessionLeeway + time.Minute,
		Logger: a.log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("session keys: %w", err)
	}
	return rk, rk, nil
}

// idpError names where a failing identity provider is configured, and what
// to check when it cannot be reached: the broker does not start without the
// keys of every identity provider it trusts.
func idpError(file string, idp auth.IdPConfig, err error) error {
	var unreachable *url.Error
	if errors.As(err, &unreachable) {
		name := idp.Name
		if name == "" {
			name = idp.Issuer
		}
		return fmt.Errorf("identity_providers in TOKENBROKER_CONFIG (%s): identity provider %q cannot be reached: %v: check its issuer (and jwks_url), and that this host can reach them", file, name, unreachable)
	}
	return fmt.Errorf("identity_providers in TOKENBROKER_CONFIG (%s): %w", file, err)
}
