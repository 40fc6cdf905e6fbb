package config

import (
	"strings"
	"testing"
)

// loadYAML loads a valid environment with yaml as TOKENBROKER_CONFIG.
func loadYAML(t *testing.T, yaml string) error {
	t.Helper()
	dir := t.TempDir()
	env := valid(t, dir)
	env["TOKENBROKER_CONFIG"] = write(t, dir, "tb.yaml", yaml)
	env["TLS_CLIENT_CA_FILE"] = write(t, dir, "ca.pem", "")
	env["TLS_CERT_FILE"] = write(t, dir, "cert.pem", "")
	env["TLS_KEY_FILE"] = write(t, dir, "key.pem", "")
	_, err := Load([]string{"--env-file="}, envOf(env))
	return err
}

// Also fix (issue 12): an identity provider whose issuer or JWKS URL is plain
// http to a non-loopback host (keys anyone on the path could replace) is
// refused at load, naming the provider and the fix.
func TestAttackPlainHTTPIdentityProvider(t *testing.T) {
	tests := []struct {
		name, idp string
		want      []string // nil: accepted
	}{
		{"https", `{name: sso, issuer: "https://sso.acme.com", audience: a}`, nil},
		{"http on loopback", `{name: sso, issuer: "http://127.0.0.1:8080", jwks_url: "http://localhost:8080/jwks", audience: a}`, nil},
		{"http issuer", `{name: sso, issuer: "http://sso.acme.com", audience: a}`,
			[]string{`identity_providers in TOKENBROKER_CONFIG: provider 1 ("sso"): issuer: "http://sso.acme.com" is plain http: use https`}},
		{"http JWKS", `{issuer: "https://sso.acme.com", jwks_url: "http://keys.acme.com/jwks", audience: a}`,
			[]string{`identity_providers in TOKENBROKER_CONFIG: provider 1 ("https://sso.acme.com"): JWKS URL: "http://keys.acme.com/jwks" is plain http`}},
		{"every problem at once", `{name: sso, issuer: "http://sso.acme.com", audience: "", algorithms: [HS256]}`,
			[]string{"plain http", "audience is required", `algorithm "HS256" is symmetric`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadYAML(t, "identity_providers:\n  - "+tt.idp+"\n")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// Finding 6: a bare service identity that could be a DNS SAN or a CN is
// refused at load, naming the service and the typed forms to write.
func TestAttackAmbiguousServiceIdentity(t *testing.T) {
	const groups = "groups:\n  BOSTON: {grants: [{connection: c, source: \"SELECT {{group}}\"}], allowed_apis: [maps]}\n"
	err := loadYAML(t, groups+"services:\n  - {name: batch, identity: batch.acme.com, groups: [BOSTON]}\n")
	for _, w := range []string{`services: service 1 ("batch"): identity "batch.acme.com" is ambiguous`, "dns:batch.acme.com", "cn:"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	for _, id := range []string{"spiffe://acme.com/batch", "uri:spiffe://acme.com/batch", "dns:batch.acme.com", "cn:batch"} {
		if err := loadYAML(t, groups+"services:\n  - {name: batch, identity: \""+id+"\", groups: [BOSTON]}\n"); err != nil {
			t.Errorf("identity %s refused: %v", id, err)
		}
	}
}
