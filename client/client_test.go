package client_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/client"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// counter counts the attempts of each RPC the client makes (a unary client
// interceptor) and can make an attempt fail instead of reaching the broker.
type counter struct {
	mu     sync.Mutex
	calls  map[string]int
	inject func(ctx context.Context, method string, n int, opts []grpc.CallOption) error // n: 1 for the first attempt
}

func (c *counter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	name := path.Base(method)
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[name]++
	n, inject := c.calls[name], c.inject
	c.mu.Unlock()
	if inject != nil {
		if err := inject(ctx, name, n, opts); err != nil {
			return err
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *counter) count(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[method]
}

// setHeader fills the response header a call asked for with grpc.Header,
// as a broker answering with a header would.
func setHeader(opts []grpc.CallOption, md metadata.MD) {
	for _, o := range opts {
		if h, ok := o.(grpc.HeaderCallOption); ok {
			*h.HeaderAddr = md
		}
	}
}

func startBroker(t *testing.T, env map[string]string) *brokertest.Broker {
	t.Helper()
	return brokertest.Start(t, brokertest.Env(env))
}

// newClient returns a client of b with opts and a counter in its chain.
func newClient(t *testing.T, b *brokertest.Broker, opts client.Config) (*client.Client, *counter) {
	t.Helper()
	cnt := &counter{}
	opts.Addr = b.GRPCAddr
	opts.DialOptions = append(opts.DialOptions, grpc.WithChainUnaryInterceptor(cnt.intercept))
	c, err := client.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, cnt
}

func boston() client.Config {
	return client.Config{Username: brokertest.BostonUser, Password: brokertest.BostonPassword}
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	s, ok := status.FromError(err)
	if !ok || s.Code() != want {
		t.Fatalf("error %v: want a status with code %v", err, want)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]client.Config{
		"no addr":            {},
		"username only":      {Addr: "localhost:1", Username: "u"},
		"password only":      {Addr: "localhost:1", Password: "p"},
		"token and username": {Addr: "localhost:1", Token: "t", Username: "u", Password: "p"},
		"negative renewal":   {Addr: "localhost:1", RenewBefore: -time.Second},
	} {
		if c, err := client.New(t.Context(), o); err == nil {
			c.Close()
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
	c, err := client.New(t.Context(), client.Config{Addr: "localhost:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCartoTokenCachedAndShared(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, cnt := newClient(t, b, boston())

	const n = 20
	toks := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			tok, err := c.CartoToken(t.Context())
			if err != nil {
				errs <- err
				return
			}
			toks[i] = tok.Token
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, tok := range toks {
		if tok == "" || tok != toks[0] {
			t.Fatalf("callers got different tokens")
		}
	}
	// Later calls are served from the cache too.
	for range 5 {
		tok, err := c.CartoToken(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if tok.Token != toks[0] || tok.Group != "BOSTON" || tok.ExpiresAt.Before(time.Now().Add(time.Hour)) {
			t.Fatalf("cached token: %v", tok)
		}
	}
	if got := b.Emulator.Stats().TokensCreated; got != 1 {
		t.Errorf("TokensCreated = %d, want 1", got)
	}
	if got := cnt.count("IssueCartoToken"); got != 1 {
		t.Errorf("IssueCartoToken called %d times, want 1", got)
	}
	if got := cnt.count("Login"); got != 1 {
		t.Errorf("Login called %d times, want 1", got)
	}
}

func TestCartoTokenCopiesAreIndependent(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, _ := newClient(t, b, boston())
	a, err := c.CartoToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a.AllowedAPIs[0] = "changed"
	again, err := c.CartoToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if again.AllowedAPIs[0] == "changed" {
		t.Fatal("a caller's change reached the client's cache")
	}
}

func TestCartoTokenRenewedBeforeExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	// The demo tokens live 24h: with 48h of margin every call renews.
	opts := boston()
	opts.RenewBefore = 48 * time.Hour
	c, cnt := newClient(t, b, opts)
	for range 3 {
		if _, err := c.CartoToken(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := cnt.count("IssueCartoToken"); got != 3 {
		t.Errorf("IssueCartoToken called %d times, want 3", got)
	}
	// The broker served its own cached token each time.
	if got := b.Emulator.Stats().TokensCreated; got != 1 {
		t.Errorf("TokensCreated = %d, want 1", got)
	}
	if got := cnt.count("Login"); got != 1 {
		t.Errorf("Login called %d times, want 1", got)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, cnt := newClient(t, b, boston())

	old, err := c.CartoToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Revoke(t.Context(), client.RevokeCartoToken(old.Token))
	if err != nil {
		t.Fatal(err)
	}
	if res.RevokedCount != 1 || !res.RevokedUntil.Equal(old.ExpiresAt) {
		t.Errorf("revoke result %+v, want 1 until %v", res, old.ExpiresAt)
	}
	fresh, err := c.CartoToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Token == old.Token {
		t.Error("the revoked token is still served")
	}
	if st := b.Emulator.Stats(); st.TokensDeleted != 1 || st.TokensCreated != 2 {
		t.Errorf("emulator: %d deleted, %d created; want 1, 2", st.TokensDeleted, st.TokensCreated)
	}
	_, err = c.Revoke(t.Context(), client.RevokeCartoToken(old.Token)) // gone
	wantCode(t, err, codes.NotFound)

	// Logout: the session is refused afterwards; the client logs in again.
	sess, err := c.Login(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(t.Context(), client.RevokeSession()); err != nil {
		t.Fatal(err)
	}
	other, _ := newClient(t, b, client.Config{Token: sess.Token})
	_, err = other.CartoToken(t.Context())
	wantCode(t, err, codes.Unauthenticated)
	logins := cnt.count("Login")
	if _, err := c.CartoToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := cnt.count("Login"); got != logins+1 {
		t.Errorf("Login called %d times after the logout, want 1", got-logins)
	}

	// Targets the client refuses itself.
	_, err = c.Revoke(t.Context(), client.RevokeTarget{})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Revoke(t.Context(), client.RevokeCartoToken(""))
	wantCode(t, err, codes.InvalidArgument)
	anon, _ := newClient(t, b, client.Config{})
	_, err = anon.Revoke(t.Context(), client.RevokeSession())
	wantCode(t, err, codes.FailedPrecondition)
	_, err = anon.Login(t.Context())
	wantCode(t, err, codes.FailedPrecondition)

	// A group: admins only.
	_, err = c.Revoke(t.Context(), client.RevokeGroup("BOSTON"))
	wantCode(t, err, codes.PermissionDenied)
}

func TestCredentialsNeverInErrors(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const password = "Wr0ng-Passw0rd-s3cret"
	bad, _ := newClient(t, b, client.Config{Username: brokertest.BostonUser, Password: password})
	_, err := bad.CartoToken(t.Context())
	wantCode(t, err, codes.Unauthenticated)
	var msgs []string
	msgs = append(msgs, err.Error())

	const token = "not-a-session-t0ken-s3cret"
	withToken, _ := newClient(t, b, client.Config{Token: token})
	_, err = withToken.CartoToken(t.Context())
	wantCode(t, err, codes.Unauthenticated)
	msgs = append(msgs, err.Error())

	// A real session that keeps being refused as expired.
	c, cnt := newClient(t, b, boston())
	sess, err := c.Login(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cnt.inject = func(_ context.Context, method string, _ int, _ []grpc.CallOption) error {
		if method == "IssueCartoToken" || method == "ListTokens" {
			return status.Error(codes.Unauthenticated, "session token expired")
		}
		return nil
	}
	_, err = c.CartoToken(t.Context())
	msgs = append(msgs, err.Error())
	_, err = c.ListTokens(t.Context(), "")
	msgs = append(msgs, err.Error())
	cnt.inject = nil
	tok, err := c.CartoToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = withToken.Revoke(t.Context(), client.RevokeCartoToken(tok.Token))
	msgs = append(msgs, err.Error())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = withToken.Revoke(ctx, client.RevokeCartoToken(tok.Token))
	msgs = append(msgs, err.Error())

	// Nor when the values are printed or logged.
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("tokens", "session", sess, "carto", tok)
	msgs = append(msgs,
		fmt.Sprintf("%v %+v %#v %s", sess, sess, sess, sess),
		fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok),
		fmt.Sprintf("%v %#v", client.RevokeCartoToken(tok.Token), client.RevokeCartoToken(tok.Token)),
		logged.String(),
	)
	for _, m := range msgs {
		for _, secret := range []string{password, token, sess.Token, tok.Token} {
			if strings.Contains(m, secret) {
				t.Errorf("%q contains a credential", m)
			}
		}
	}
	if !strings.Contains(msgs[len(msgs)-1], "BOSTON") {
		t.Errorf("the log lost the group: %s", logged.String())
	}
}

func TestClosedClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, _ := newClient(t, b, boston())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := c.CartoToken(t.Context())
	wantCode(t, err, codes.Canceled)
}
