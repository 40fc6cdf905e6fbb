package cartosim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// WaitFor returns once the counters say what the caller waits for: at once
// if they already do, else when a request changes them; and gives up with
// its context.
func TestWaitFor(t *testing.T) {
	e := newEnv(t, Config{})
	oauthSeen := func(st Stats) bool { return st.OAuthRequests >= 1 }
	got := make(chan error, 1)
	go func() { _, err := e.sim.WaitFor(context.Background(), oauthSeen); got <- err }()
	resp, err := http.PostForm(e.srv.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {testClient}, "client_secret": {testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-got; err != nil {
		t.Fatalf("WaitFor after the OAuth request: %v", err)
	}
	if st, err := e.sim.WaitFor(context.Background(), oauthSeen); err != nil || st.OAuthRequests != 1 {
		t.Fatalf("WaitFor on counters that already hold: %+v %v", st, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := e.sim.WaitFor(ctx, func(st Stats) bool { return st.TokensCreated > 0 }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor for what never happens: %v, want its context's deadline", err)
	}
}
