package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// cli runs the command line with env as the environment.
type cli struct {
	t   *testing.T
	env map[string]string
}

type result struct {
	code           int
	stdout, stderr string
}

func (c cli) run(stdin string, args ...string) result {
	c.t.Helper()
	var out, errOut bytes.Buffer
	code := run(c.t.Context(), args, strings.NewReader(stdin), &out, &errOut, func(k string) string { return c.env[k] })
	return result{code, out.String(), errOut.String()}
}

func (c cli) ok(stdin string, args ...string) string {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != 0 {
		c.t.Fatalf("%q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.stdout
}

func newCLI(t *testing.T) (cli, *brokertest.Broker) {
	b := brokertest.Start(t)
	return cli{t: t, env: map[string]string{"TOKENBROKER_ADDR": b.GRPCAddr}}, b
}

func TestLoginTokenRevoke(t *testing.T) {
	t.Parallel()
	c, b := newCLI(t)

	session := strings.TrimSpace(c.ok("boston\n", "login", "--username", brokertest.BostonUser))
	if session == "" || strings.ContainsAny(session, " \n") {
		t.Fatalf("login printed %q", session)
	}

	var login struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		Group     string    `json:"group"`
	}
	if err := json.Unmarshal([]byte(c.ok("boston", "--json", "login", "--username", brokertest.BostonUser)), &login); err != nil {
		t.Fatal(err)
	}
	if login.Token == "" || login.Group != "BOSTON" || time.Until(login.ExpiresAt) < 30*time.Minute {
		t.Fatalf("login --json: %+v", login)
	}

	// The session from the flag, then from the environment.
	tok := strings.TrimSpace(c.ok("", "--token", session, "token"))
	c.env["TOKENBROKER_TOKEN"] = session
	var full struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		Group     string    `json:"group"`
		Grants    []struct {
			ConnectionName string `json:"connection_name"`
			Source         string `json:"source"`
		} `json:"grants"`
		AllowedAPIs []string `json:"allowed_apis"`
		Referers    []string `json:"referers"`
		APIBaseURL  string   `json:"api_base_url"`
	}
	if err := json.Unmarshal([]byte(c.ok("", "--json", "token")), &full); err != nil {
		t.Fatal(err)
	}
	if full.Token != tok || full.Group != "BOSTON" || len(full.Grants) != 1 || full.Grants[0].ConnectionName != "carto_dw" ||
		!strings.Contains(full.Grants[0].Source, "'BOSTON'") || strings.Join(full.AllowedAPIs, ",") != "maps,sql" ||
		full.Referers == nil || full.APIBaseURL != b.GatewayURL || full.ExpiresAt.IsZero() {
		t.Fatalf("token --json: %+v", full)
	}
	if got := strings.TrimSpace(c.ok("", "token", "--group", "BOSTON")); got != tok {
		t.Fatal("token --group BOSTON gave another token")
	}

	var revoked struct {
		RevokedUntil time.Time `json:"revoked_until"`
		RevokedCount int       `json:"revoked_count"`
	}
	if err := json.Unmarshal([]byte(c.ok("", "--json", "revoke", "carto-token", tok)), &revoked); err != nil {
		t.Fatal(err)
	}
	if revoked.RevokedCount != 1 || !revoked.RevokedUntil.Equal(full.ExpiresAt) {
		t.Fatalf("revoke --json: %+v", revoked)
	}
	if again := strings.TrimSpace(c.ok("", "token")); again == tok || again == "" {
		t.Fatal("the revoked token is served again")
	}

	// Logout; the session is refused afterwards.
	if out := c.ok("", "revoke", "session"); !strings.Contains(out, "revoked session") {
		t.Fatalf("revoke session printed %q", out)
	}
	r := c.run("", "token")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: Unauthenticated: ") {
		t.Fatalf("token after logout: exit %d, %q", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, session) {
		t.Fatal("the session is in the error")
	}
}

func TestBrokerErrorsExit1(t *testing.T) {
	t.Parallel()
	c, _ := newCLI(t)
	c.env["TOKENBROKER_TOKEN"] = strings.TrimSpace(c.ok("ny\n", "login", "--username", brokertest.NYUser))

	for _, args := range [][]string{{"list"}, {"--json", "list", "--group", "NEW YORK"}, {"revoke", "group", "NEW YORK"}} {
		r := c.run("", args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "error: PermissionDenied: ") || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	r := c.run("", "token", "--group", "BOSTON")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: PermissionDenied: ") {
		t.Errorf("another group's token: exit %d, %q", r.code, r.stderr)
	}

	const password = "not-the-password"
	r = c.run(password+"\n", "login", "--username", brokertest.NYUser)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: Unauthenticated: ") || strings.Contains(r.stderr, password) {
		t.Errorf("wrong password: exit %d, %q", r.code, r.stderr)
	}
}

func TestUnreachableBrokerTimesOut(t *testing.T) {
	t.Parallel()
	c := cli{t: t, env: map[string]string{"TOKENBROKER_TOKEN": "x"}}
	start := time.Now()
	r := c.run("", "--addr", "127.0.0.1:1", "--timeout", "500ms", "token")
	if r.code != 1 || !(strings.HasPrefix(r.stderr, "error: Unavailable: ") || strings.HasPrefix(r.stderr, "error: DeadlineExceeded: ")) {
		t.Fatalf("exit %d, %q", r.code, r.stderr)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v with --timeout 500ms", elapsed)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := cli{t: t, env: map[string]string{"TOKENBROKER_ADDR": "127.0.0.1:1"}}
	for _, tc := range []struct {
		stdin string
		args  []string
	}{
		{"", nil},
		{"", []string{"frobnicate"}},
		{"", []string{"--no-such-flag", "token"}},
		{"", []string{"--timeout", "soon", "token"}},
		{"", []string{"--timeout", "-1s", "token"}},
		{"boston\n", []string{"login"}},
		{"", []string{"login", "--username", "u"}},                       // no password on stdin
		{"\n", []string{"login", "--username", "u"}},                     // an empty one
		{"boston\n", []string{"login", "--username", "u", "boston"}},     // never as an argument
		{"boston\n", []string{"login", "--username", "u", "--password"}}, // no such flag
		{"", []string{"token", "extra"}},
		{"", []string{"revoke"}},
		{"", []string{"revoke", "carto-token"}},
		{"", []string{"revoke", "group"}},
		{"", []string{"revoke", "everything"}},
		{"", []string{"revoke", "session"}}, // no --token
		{"", []string{"list", "--group"}},
		{"", []string{"queries", "extra"}},
		{"", []string{"query"}},
		{"", []string{"query", "--geojson"}},
		{"", []string{"query", "my-stores", "storetype"}},                  // not param=value
		{"", []string{"query", "my-stores", "=Drugstore"}},                 // no name
		{"", []string{"query", "my-stores", "storetype=a", "storetype=b"}}, // twice
		{"", []string{"query", "my-stores", "--no-such-flag"}},
		{"", []string{"query", "--", "my-stores", "--geojson"}}, // no flags after --
		{"", []string{"--ca", notPEM, "token"}},
		{"", []string{"--ca", filepath.Join(dir, "missing.pem"), "list"}},
		{"", []string{"--cert", notPEM, "token"}}, // without --key
	} {
		r := c.run(tc.stdin, tc.args...)
		if r.code != 2 || r.stderr == "" || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and a message", tc.args, r.code, r.stdout, r.stderr)
		}
	}
	for _, args := range [][]string{{"-h"}, {"help"}, {"login", "-h"}, {"query", "-h"}, {"queries", "-h"}} {
		if r := c.run("", args...); r.code != 0 {
			t.Errorf("%q: exit %d", args, r.code)
		}
	}
	// The usage never shows the token from the environment.
	c.env["TOKENBROKER_TOKEN"] = "env-s3cret-token"
	if r := c.run("", "-h"); strings.Contains(r.stderr+r.stdout, "env-s3cret-token") || !strings.Contains(r.stderr, "--token") && !strings.Contains(r.stderr, "-token") {
		t.Errorf("usage: %q", r.stderr)
	}
}
