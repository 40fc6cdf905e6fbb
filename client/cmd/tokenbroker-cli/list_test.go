package main

import (
	"context"
	"encoding/json"
	"net"
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
