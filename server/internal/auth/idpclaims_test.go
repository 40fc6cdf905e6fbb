package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
)

func TestIdPGroupAndAdminClaims(t *testing.T) {
	iss := idptest.New(t, "RS256")
	keycloak := IdPConfig{GroupClaim: "realm_access.roles", GroupMatch: "^carto-(.+)$", AdminClaim: "realm_access.roles", AdminValue: "carto-admin"}
	roles := func(r ...any) jwt.MapClaims {
		return idpWith(idpWithout(idpClaims(iss), "groups"), "realm_access", map[string]any{"roles": r})
	}
	tests := []struct {
		name      string
		cfg       IdPConfig
		claims    jwt.MapClaims
		wantGroup string
		wantAdmin bool
		wantErr   error
	}{
		{"default: first of the list", IdPConfig{}, idpClaims(iss), "BOSTON", false, nil},
		{"default: a string", IdPConfig{}, idpWith(idpClaims(iss), "groups", "NEW YORK"), "NEW YORK", false, nil},
		{"capture on a nested list", keycloak, roles("user", "carto-BOSTON"), "BOSTON", false, nil},
		{"first match wins", keycloak, roles("carto-NYC", "carto-BOSTON"), "NYC", false, nil},
		{"non-strings skipped", keycloak, roles(7, map[string]any{"x": 1}, "carto-BOSTON"), "BOSTON", false, nil},
		{"empty capture skipped", IdPConfig{GroupClaim: "realm_access.roles", GroupMatch: "^carto-(.*)$"}, roles("carto-", "carto-SF"), "SF", false, nil},
		{"admin in the list", keycloak, roles("carto-BOSTON", "carto-admin"), "BOSTON", true, nil},
		{"admin as a string", IdPConfig{AdminClaim: "role", AdminValue: "admin"}, idpWith(idpClaims(iss), "role", "admin"), "BOSTON", true, nil},
		{"admin value must be exact", IdPConfig{AdminClaim: "role", AdminValue: "admin"}, idpWith(idpClaims(iss), "role", "administrator"), "BOSTON", false, nil},
		{"no admin claim", IdPConfig{AdminClaim: "role", AdminValue: "admin"}, idpClaims(iss), "BOSTON", false, nil},
		{"match without capture: the whole value", IdPConfig{GroupMatch: "^team-"}, idpWith(idpClaims(iss), "groups", []string{"x", "team-a"}), "team-a", false, nil},
		{"nothing matches", keycloak, roles("user", "offline_access"), "", false, ErrNoGroup},
		{"nested claim missing", keycloak, idpClaims(iss), "", false, ErrNoGroup},
		{"path through a non-object", keycloak, idpWith(idpClaims(iss), "realm_access", "roles"), "", false, ErrNoGroup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestIdP(t, iss, tt.cfg)
			got, err := p.Verify(context.Background(), iss.Sign(t, tt.claims))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if got.Group != tt.wantGroup || got.Admin != tt.wantAdmin {
				t.Fatalf("group, admin = %q, %v; want %q, %v", got.Group, got.Admin, tt.wantGroup, tt.wantAdmin)
			}
		})
	}
}
