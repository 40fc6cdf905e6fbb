package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
)

// fakeAuth accepts the bearer "good".
type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, tok string) (auth.Principal, error) {
	if tok != "good" {
		return auth.Principal{}, fmt.Errorf("%w: invalid session token", auth.ErrUnauthenticated)
	}
	return auth.Principal{Kind: auth.KindUser, Subject: "u", Group: "G"}, nil
}

// toStatus stands for the API's error mapping (api.Status), which the
// chain is given.
func toStatus(_ context.Context, err error) error {
	if errors.Is(err, auth.ErrUnauthenticated) {
		return status.Error(codes.Unauthenticated, "invalid session token")
	}
	return status.Error(codes.Internal, "internal error")
}

// testChain is the chain of the tests: fakeAuth's callers, the stand-in
// for the API's error mapping, log.
func testChain(log *slog.Logger) Chain {
	return NewChain(ChainConfig{Authenticator: fakeAuth{}, Logger: log, ErrorStatus: toStatus})
}

// testGateway is the REST gateway of fakeService through chain.
func testGateway(tb testing.TB, chain Chain) http.Handler {
	tb.Helper()
	gw, err := NewGateway(context.Background(), GatewayConfig{Service: fakeService{}, Chain: chain, CORSOrigins: []string{"*"}})
	if err != nil {
		tb.Fatal(err)
	}
	return gw
}

// fakeService panics on IssueCartoToken and echoes the principal on Login
// (Login is public, so there is none).
type fakeService struct {
	tokenbrokerv1.UnimplementedTokenBrokerServer
}

func (fakeService) Login(ctx context.Context, _ *tokenbrokerv1.LoginRequest) (*tokenbrokerv1.LoginResponse, error) {
	_, has := auth.FromContext(ctx)
	return &tokenbrokerv1.LoginResponse{Token: fmt.Sprint("principal:", has)}, nil
}

func (fakeService) IssueCartoToken(ctx context.Context, _ *tokenbrokerv1.IssueCartoTokenRequest) (*tokenbrokerv1.IssueCartoTokenResponse, error) {
	p, _ := auth.FromContext(ctx)
	if p.Group == "G" {
		panic("boom: secret-internal-state")
	}
	return nil, errors.New("unreachable")
}

func (fakeService) RevokeToken(ctx context.Context, _ *tokenbrokerv1.RevokeTokenRequest) (*tokenbrokerv1.RevokeTokenResponse, error) {
	p, _ := auth.FromContext(ctx)
	return &tokenbrokerv1.RevokeTokenResponse{}, status.Error(codes.Aborted, "subject "+p.Subject)
}

func serve(t *testing.T) (tokenbrokerv1.TokenBrokerClient, string, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	chain := testChain(log)
	gs, _ := NewGRPCServer(GRPCConfig{Service: fakeService{}, Chain: chain})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	hs := httptest.NewServer(testGateway(t, chain))
	t.Cleanup(hs.Close)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tokenbrokerv1.NewTokenBrokerClient(conn), hs.URL, &logs
}

func restCall(t *testing.T, url, bearer string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	if bearer != "" {
		req.Header.Set("Authorization", bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// Both transports run the same chain: authentication on non-public methods,
// none on public ones, and panics recovered into INTERNAL without detail.
func TestBothTransportsRunTheChain(t *testing.T) {
	client, rest, logs := serve(t)
	md := func(v string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", v)
	}
	tests := []struct {
		name     string
		path     string
		grpcCall func() error
		bearer   string
		wantHTTP int
		wantCode codes.Code
	}{
		{"no credentials", "/v1/carto-token", func() error {
			_, err := client.IssueCartoToken(context.Background(), &tokenbrokerv1.IssueCartoTokenRequest{})
			return err
		}, "", 401, codes.Unauthenticated},
		{"bad credentials", "/carto-token", func() error {
			_, err := client.IssueCartoToken(md("Bearer bad"), &tokenbrokerv1.IssueCartoTokenRequest{})
			return err
		}, "Bearer bad", 401, codes.Unauthenticated},
		{"panic", "/v1/carto-token", func() error {
			_, err := client.IssueCartoToken(md("Bearer good"), &tokenbrokerv1.IssueCartoTokenRequest{})
			return err
		}, "Bearer good", 500, codes.Internal},
		{"principal reaches the handler", "/v1/revoke", func() error {
			_, err := client.RevokeToken(md("bearer   good"), &tokenbrokerv1.RevokeTokenRequest{})
			return err
		}, "Bearer good", 409, codes.Aborted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.grpcCall()
			if status.Code(err) != tt.wantCode {
				t.Fatalf("gRPC: %v, want %v", err, tt.wantCode)
			}
			code, body := restCall(t, rest+tt.path, tt.bearer)
			if code != tt.wantHTTP || body["code"] != float64(tt.wantCode) {
				t.Fatalf("REST: %d %v, want %d", code, body, tt.wantHTTP)
			}
			if strings.Contains(fmt.Sprint(body, err), "secret-internal-state") {
				t.Fatal("panic detail reached the caller")
			}
		})
	}
	if !strings.Contains(logs.String(), "panic in request") {
		t.Fatal("the panic was not logged for the operator")
	}
	// Login is public: no credentials needed, and no principal is made up.
	r, err := client.Login(context.Background(), &tokenbrokerv1.LoginRequest{})
	if err != nil || r.GetToken() != "principal:false" {
		t.Fatalf("public Login: %v, %v", r, err)
	}
	if code, body := restCall(t, rest+"/login", ""); code != 200 || body["token"] != "principal:false" {
		t.Fatalf("public REST login: %d %v", code, body)
	}
}

func TestBearer(t *testing.T) {
	tests := []struct {
		vals []string
		want string
		ok   bool
	}{
		{[]string{"Bearer abc"}, "abc", true},
		{[]string{"bearer abc "}, "abc", true},
		{[]string{"BEARER  abc"}, "abc", true},
		{nil, "", false},
		{[]string{"Bearer"}, "", false},
		{[]string{"Bearer "}, "", false},
		{[]string{"Basic abc"}, "", false},
		{[]string{"Bearer a", "Bearer b"}, "", false},
	}
	for _, tt := range tests {
		md := metadata.MD{}
		for _, v := range tt.vals {
			md.Append("authorization", v)
		}
		got, err := bearer(metadata.NewIncomingContext(context.Background(), md))
		if got != tt.want || (err == nil) != tt.ok || (err != nil && status.Code(err) != codes.Unauthenticated) {
			t.Errorf("bearer(%q) = %q, %v", tt.vals, got, err)
		}
	}
}
