package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
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
		full.Referers == nil || full.APIBaseURL != b.EmulatorURL || full.ExpiresAt.IsZero() {
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
		{"", []string{"--ca", notPEM, "token"}},
		{"", []string{"--ca", filepath.Join(dir, "missing.pem"), "list"}},
		{"", []string{"--cert", notPEM, "token"}}, // without --key
	} {
		r := c.run(tc.stdin, tc.args...)
		if r.code != 2 || r.stderr == "" || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and a message", tc.args, r.code, r.stdout, r.stderr)
		}
	}
	for _, args := range [][]string{{"-h"}, {"help"}, {"login", "-h"}} {
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

// admin is a broker stand-in that answers ListTokens to the bearer "admin"
// (the demo broker has no admin user).
type admin struct {
	tokenbrokerv1.UnimplementedTokenBrokerServer
}

func (admin) ListTokens(ctx context.Context, req *tokenbrokerv1.ListTokensRequest) (*tokenbrokerv1.ListTokensResponse, error) {
	if auth := metadata.ValueFromIncomingContext(ctx, "authorization"); len(auth) != 1 || auth[0] != "Bearer admin" {
		return nil, status.Error(codes.PermissionDenied, "admins only")
	}
	created := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	all := []*tokenbrokerv1.HeldToken{
		{Group: "BOSTON", MaskedToken: "eyJh…x9Zk", TokenId: "0123456789abcdef", Policy: "aaaaaaaaaaaa", Current: true,
			CreatedAt: timestamppb.New(created), ExpiresAt: timestamppb.New(created.Add(24 * time.Hour))},
		{Group: "NEW YORK", MaskedToken: "eyJh…q1Wm", TokenId: "fedcba9876543210", Policy: "bbbbbbbbbbbb",
			CreatedAt: timestamppb.New(created), ExpiresAt: timestamppb.New(created.Add(24 * time.Hour))},
	}
	resp := &tokenbrokerv1.ListTokensResponse{}
	for _, h := range all {
		if req.GetGroup() == "" || req.GetGroup() == h.GetGroup() {
			resp.Tokens = append(resp.Tokens, h)
		}
	}
	return resp, nil
}

func TestListAsAdmin(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	tokenbrokerv1.RegisterTokenBrokerServer(srv, admin{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	c := cli{t: t, env: map[string]string{"TOKENBROKER_ADDR": lis.Addr().String(), "TOKENBROKER_TOKEN": "admin"}}

	table := c.ok("", "list")
	want := `GROUP     TOKEN      ID                POLICY        CURRENT  CREATED               EXPIRES
BOSTON    eyJh…x9Zk  0123456789abcdef  aaaaaaaaaaaa  true     2026-11-23T09:00:00Z  2026-11-24T09:00:00Z
NEW YORK  eyJh…q1Wm  fedcba9876543210  bbbbbbbbbbbb  false    2026-11-23T09:00:00Z  2026-11-24T09:00:00Z
`
	if table != want {
		t.Errorf("list printed\n%s\nwant\n%s", table, want)
	}

	var out struct {
		Tokens []struct {
			Group       string    `json:"group"`
			MaskedToken string    `json:"masked_token"`
			TokenID     string    `json:"token_id"`
			Policy      string    `json:"policy"`
			Current     bool      `json:"current"`
			CreatedAt   time.Time `json:"created_at"`
			ExpiresAt   time.Time `json:"expires_at"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(c.ok("", "--json", "list", "--group", "NEW YORK")), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Tokens) != 1 || out.Tokens[0].Group != "NEW YORK" || out.Tokens[0].TokenID != "fedcba9876543210" ||
		out.Tokens[0].Current || out.Tokens[0].ExpiresAt.Sub(out.Tokens[0].CreatedAt) != 24*time.Hour {
		t.Errorf("list --json: %+v", out)
	}
	if got := c.ok("", "--json", "list", "--group", "DENVER"); !strings.Contains(got, `"tokens": []`) {
		t.Errorf("empty list --json: %s", got)
	}
}

// The demo's admin lists, through the CLI, the tokens a real broker holds.
func TestListAsAdminOnARealBroker(t *testing.T) {
	t.Parallel()
	c, _ := newCLI(t)
	for _, u := range []struct{ user, pw string }{{brokertest.BostonUser, brokertest.BostonPassword}, {brokertest.NYUser, brokertest.NYPassword}} {
		session := strings.TrimSpace(c.ok(u.pw+"\n", "login", "--username", u.user))
		c.ok("", "--token", session, "token")
	}
	admin := strings.TrimSpace(c.ok(brokertest.AdminPassword+"\n", "login", "--username", brokertest.AdminUser))
	table := c.ok("", "--token", admin, "list")
	if !strings.HasPrefix(table, "GROUP") || !strings.Contains(table, "\nBOSTON ") || !strings.Contains(table, "\nNEW YORK ") {
		t.Fatalf("list as admin:\n%s", table)
	}
}
