package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadFile: any TOKENBROKER_CONFIG file, however malformed, loads or is
// refused with a ValidationError; it never panics and never half-loads.
func FuzzLoadFile(f *testing.F) {
	f.Add(DemoYAML())
	for _, s := range []string{
		"users: []\n",
		"groups:\n  \"*\": {grants: [{connection: c, source: \"SELECT {{group}}\"}], allowed_apis: [maps]}\n",
		"users:\n  - {username: a, password_hash: x, group: G}\ngroups: {G: {token_ttl: -1h}}\n",
		"identity_providers:\n  - {name: x, issuer: \"http://\", group_match: \"(\"}\nservices:\n  - {name: s, groups: []}\n",
		"groups:\n  G:\n    grants: [{connection: c, source: \"{{group}}{{city}}\", dialect: nope}]\n    referers: [\"https://a/\"]\n",
		"{{{", "- - -", "users: !!binary AAAA", "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	// One directory for every input: a t.TempDir per input made each run
	// slow enough that minimizing an input stalled the fuzzer for minutes.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "tb.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{
			"JWT_SECRET": "0123456789abcdef0123456789abcdef", "CARTO_BASE_URL": "https://carto.example",
			"CARTO_CLIENT_ID": "id", "CARTO_CLIENT_SECRET": "s", "TOKENBROKER_CONFIG": path,
			"TOKENBROKER_STORE": "memory",
		}
		c, err := Load([]string{"--env-file="}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		var verr *ValidationError
		switch {
		case err != nil && !errors.As(err, &verr):
			t.Fatalf("not a ValidationError: %v", err)
		case err == nil && len(c.Users) == 0 && len(c.IdentityProviders) == 0 && len(c.Services) == 0:
			t.Fatal("a config with no callers was accepted")
		}
	})
}
