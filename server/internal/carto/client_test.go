package carto

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/clocktest"
)

const secret = "s3cr3t-client-secret-value"

// env is a client talking to a real emulator over loopback HTTP.
type env struct {
	sim    *cartosim.Sim
	srv    *httptest.Server
	client *Client
	clk    *clocktest.Clock
}

func newEnv(t *testing.T, opts cartosim.Config) *env {
	t.Helper()
	clk := clocktest.At(time.Now())
	opts.ClientID, opts.ClientSecret = "client-1", secret
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	sim, err := cartosim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "client-1", ClientSecret: secret, Now: clk.Now, FetchTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, srv: srv, client: c, clk: clk}
}

func bostonRequest(expires time.Time) CreateTokenRequest {
	return CreateTokenRequest{
		Grants:      []Grant{{ConnectionName: "carto_dw", Source: "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'BOSTON'"}},
		AllowedAPIs: []string{"maps"},
		ExpiresAt:   expires,
		Name:        "tokenbroker:BOSTON:test",
	}
}

func TestCreateListDelete(t *testing.T) {
	for _, opts := range []cartosim.Config{
		{},
		{CreateStatus: http.StatusCreated, DeleteStatus: http.StatusOK, ListWrapped: true},
	} {
		e := newEnv(t, opts)
		ctx := context.Background()
		exp := e.clk.Now().Add(24 * time.Hour).Truncate(time.Second)
		tok, err := e.client.CreateToken(ctx, bostonRequest(exp))
		if err != nil {
			t.Fatal(err)
		}
		if tok.Token == "" || !tok.ExpiresAt.Equal(exp) {
			t.Fatalf("created %+v", tok)
		}
		info, ok := e.sim.Token(tok.Token)
		if !ok || !info.ExpiresAt.Equal(exp) || info.Name != "tokenbroker:BOSTON:test" || len(info.Referers) != 0 || info.AllowedAPIs[0] != "maps" {
			t.Fatalf("emulator holds %+v", info)
		}
		list, err := e.client.ListTokens(ctx)
		if err != nil || len(list) != 1 || list[0].Token != tok.Token || list[0].Name != "tokenbroker:BOSTON:test" {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if err := e.client.DeleteToken(ctx, tok.Token); err != nil {
			t.Fatal(err)
		}
		if err := e.client.DeleteToken(ctx, tok.Token); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		if s := e.sim.Stats(); s.OAuthRequests != 1 {
			t.Fatalf("%d OAuth requests for 5 calls, want 1", s.OAuthRequests)
		}
	}
}

func TestOneOAuthFetchForConcurrentCalls(t *testing.T) {
	e := newEnv(t, cartosim.Config{})
	e.sim.SetFaults(cartosim.Faults{Latency: 50 * time.Millisecond, Scope: cartosim.ScopeOAuth})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			_, err := e.client.CreateToken(context.Background(), bostonRequest(e.clk.Now().Add(time.Hour)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := e.sim.Stats(); s.OAuthRequests != 1 || s.TokensCreated != 50 {
		t.Fatalf("stats %+v: want 1 OAuth request and 50 creations", s)
	}
}

// A caller that gives up while the OAuth token is being fetched does not
// fail the fetch for the others, and does not cause a second one.
func TestOAuthFetchSurvivesCallerCancel(t *testing.T) {
	e := newEnv(t, cartosim.Config{})
	e.sim.SetFaults(cartosim.Faults{Latency: 100 * time.Millisecond, Scope: cartosim.ScopeOAuth})
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := e.client.ListTokens(short); done <- err }()
	// The impatient caller's fetch has reached the emulator (held there by
	// the latency): the next caller joins it.
	if _, err := e.sim.WaitFor(t.Context(), func(s cartosim.Stats) bool { return s.OAuthRequests >= 1 }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ListTokens(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v, want its own deadline", err)
	}
	if n := e.sim.Stats().OAuthRequests; n != 1 {
		t.Fatalf("%d OAuth requests, want 1", n)
	}
}

func TestOAuthRefreshAhead(t *testing.T) {
	e := newEnv(t, cartosim.Config{OAuthTTL: time.Hour})
	ctx := context.Background()
	if _, err := e.client.ListTokens(ctx); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(30 * time.Minute)
	if _, err := e.client.ListTokens(ctx); err != nil || e.sim.Stats().OAuthRequests != 1 {
		t.Fatalf("before 80%% of the lifetime: err %v, %d fetches", err, e.sim.Stats().OAuthRequests)
	}
	// Past 80%: the current token is still used, and a fetch runs behind it.
	e.clk.Advance(20 * time.Minute)
	if _, err := e.client.ListTokens(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait for that fetch to end, the new token set: join it (it started
	// before ListTokens returned; a no-op runs if it is over). Waiting for
	// the emulator's count instead, then moving the clock before the token
	// was set, made the next call fetch a third one.
	<-e.client.oauth.flight.DoChan("oauth", func() (any, error) { return nil, nil })
	if n := e.sim.Stats().OAuthIssued; n != 2 {
		t.Fatalf("%d OAuth tokens issued after the background refresh, want 2", n)
	}
	// Far past the old token's expiry, the refreshed one is used: no fetch.
	e.clk.Advance(30 * time.Minute)
	if _, err := e.client.ListTokens(ctx); err != nil || e.sim.Stats().OAuthRequests != 2 {
		t.Fatalf("after refresh: err %v, %d fetches", err, e.sim.Stats().OAuthRequests)
	}
}

// CARTO refuses an OAuth token the client believes valid (here: the two
// clocks disagree). The client drops it and retries once with a new one.
func TestUnauthorizedRetriesOnceWithNewToken(t *testing.T) {
	simClock := clocktest.At(time.Now())
	e := newEnv(t, cartosim.Config{OAuthTTL: time.Hour, Now: simClock.Now})
	ctx := context.Background()
	if _, err := e.client.ListTokens(ctx); err != nil {
		t.Fatal(err)
	}
	simClock.Advance(2 * time.Hour) // CARTO now considers the token expired
	if _, err := e.client.ListTokens(ctx); err != nil {
		t.Fatalf("after CARTO expired the token: %v", err)
	}
	if s := e.sim.Stats(); s.OAuthRequests != 2 || s.TokensListed != 2 {
		t.Fatalf("stats %+v: want 2 OAuth requests, 2 lists", s)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	tests := []struct {
		name   string
		faults cartosim.Faults
		ctx    func() (context.Context, context.CancelFunc)
		badKey bool
		req    func(time.Time) CreateTokenRequest
		want   error
	}{
		{name: "outage 503", faults: cartosim.Faults{Outage: cartosim.OutageUnavailable}, want: ErrUnavailable},
		{name: "connection dropped", faults: cartosim.Faults{Outage: cartosim.OutageDrop}, want: ErrUnavailable},
		{name: "server errors", faults: cartosim.Faults{ErrorRate: 1}, want: ErrUnavailable},
		{name: "rate limited", faults: cartosim.Faults{RateLimit: true, RetryAfter: 7 * time.Second, Scope: cartosim.ScopeTokens}, want: ErrRateLimited},
		{name: "wrong secret", badKey: true, want: ErrCredentials},
		{name: "grant refused", req: func(exp time.Time) CreateTokenRequest {
			r := bostonRequest(exp)
			r.AllowedAPIs = []string{"tiles"}
			return r
		}, want: ErrRejected},
		{name: "caller deadline", faults: cartosim.Faults{Outage: cartosim.OutageHang}, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, want: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, cartosim.Config{})
			e.sim.SetFaults(tt.faults)
			client := e.client
			if tt.badKey {
				var err error
				client, err = New(Config{BaseURL: e.srv.URL, AuthURL: e.srv.URL + "/oauth/token", ClientID: "client-1", ClientSecret: "wrong"})
				if err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			req := bostonRequest(e.clk.Now().Add(time.Hour))
			if tt.req != nil {
				req = tt.req(e.clk.Now().Add(time.Hour))
			}
			_, err := client.CreateToken(ctx, req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "wrong") && tt.badKey {
				t.Fatalf("error reveals the client secret: %v", err)
			}
			var ce *Error
			if tt.want == ErrRateLimited && (!errors.As(err, &ce) || ce.RetryAfter != 7*time.Second) {
				t.Fatalf("Retry-After not carried: %v", err)
			}
		})
	}
}

// The client accepts a malformed 2xx from CARTO as a failure, not a token.
func TestMalformedResponses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "x", "expires_in": 3600})
			return
		}
		_, _ = w.Write([]byte(`{"not":"a token"}`))
	}))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, AuthURL: srv.URL + "/oauth/token", ClientID: "a", ClientSecret: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateToken(context.Background(), bostonRequest(time.Now().Add(time.Hour))); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if _, err := c.ListTokens(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("list err = %v, want ErrUnavailable", err)
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{BaseURL: "ftp://x", AuthURL: "nope"})
	if err == nil {
		t.Fatal("accepted a bad config")
	}
	for _, want := range []string{"base URL", "auth URL", "client id and secret"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// CredentialsRefused says whether CARTO refused the client credentials on
// the last OAuth fetch: an outage does not set it, nor clear it.
func TestCredentialsRefused(t *testing.T) {
	e := newEnv(t, cartosim.Config{})
	if e.client.CredentialsRefused() {
		t.Fatal("refused before any fetch")
	}
	e.sim.SetFaults(cartosim.Faults{Outage: cartosim.OutageUnavailable})
	if err := e.client.Warm(context.Background()); !errors.Is(err, ErrUnavailable) || e.client.CredentialsRefused() {
		t.Fatalf("outage: %v, refused %v", err, e.client.CredentialsRefused())
	}
	e.sim.SetFaults(cartosim.Faults{})
	e.clk.Advance(time.Hour) // past the backoff
	if err := e.client.Warm(context.Background()); err != nil || e.client.CredentialsRefused() {
		t.Fatalf("good secret: %v, refused %v", err, e.client.CredentialsRefused())
	}

	wrong, err := New(Config{BaseURL: e.srv.URL, AuthURL: e.srv.URL + "/oauth/token", ClientID: "client-1", ClientSecret: "wrong", Now: e.clk.Now, BreakerThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Warm(context.Background()); !errors.Is(err, ErrCredentials) || !wrong.CredentialsRefused() {
		t.Fatalf("wrong secret: %v, refused %v", err, wrong.CredentialsRefused())
	}
	e.sim.SetFaults(cartosim.Faults{Outage: cartosim.OutageUnavailable})
	e.clk.Advance(time.Hour)
	if err := wrong.Warm(context.Background()); !errors.Is(err, ErrUnavailable) || !wrong.CredentialsRefused() {
		t.Fatalf("wrong secret, then an outage: %v, refused %v", err, wrong.CredentialsRefused())
	}
}
