package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
)

// idpFetches is an http.RoundTripper that reports every response the
// verifier receives from the IdP, so that a test waits for the verifier's
// background fetches instead of sleeping.
type idpFetches struct {
	statuses chan int // the status of each response; 0 for a failed request
}

func newIDPFetches() *idpFetches { return &idpFetches{statuses: make(chan int, 1024)} }

// client is an HTTP client reporting to f, for IdPConfig.HTTPClient.
func (f *idpFetches) client() *http.Client { return &http.Client{Transport: f} }

func (f *idpFetches) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	select {
	case f.statuses <- status:
	default: // more responses than any test waits for
	}
	return resp, err
}

// next waits for the next response, or fails the test after 10 s.
func (f *idpFetches) next(t *testing.T) int {
	t.Helper()
	select {
	case status := <-f.statuses:
		return status
	case <-time.After(10 * time.Second):
		t.Fatal("no JWKS fetch in 10 s")
		return 0
	}
}

func TestIdPKeyRotation(t *testing.T) {
	tests := []struct {
		name string
		cfg  IdPConfig
		// refresh makes the verifier see the retired JWKS.
		refresh func(t *testing.T, iss *idptest.Issuer, p *IdP, old string, fetches *idpFetches)
	}{
		{
			name: "refetch on unknown kid",
			cfg:  IdPConfig{UnknownKIDInterval: time.Millisecond, RefreshInterval: time.Hour},
			refresh: func(t *testing.T, iss *idptest.Issuer, p *IdP, _ string, _ *idpFetches) {
				// A token with a kid the cache lacks makes it refetch.
				_, _ = p.Verify(context.Background(), iss.SignWith(t, map[string]any{"kid": "unknown"}, idpClaims(iss)))
			},
		},
		{
			name: "periodic refresh",
			cfg:  IdPConfig{UnknownKIDInterval: time.Hour, RefreshInterval: 10 * time.Millisecond},
			refresh: func(t *testing.T, _ *idptest.Issuer, p *IdP, old string, fetches *idpFetches) {
				// Wait for the background refresh to drop the old key: the
				// cache is replaced just after a fetch, so the key can still
				// verify until the next one.
				deadline := time.Now().Add(10 * time.Second)
				for _, err := p.Verify(context.Background(), old); err == nil; _, err = p.Verify(context.Background(), old) {
					if time.Now().After(deadline) {
						t.Fatal("the retired key is still accepted after 10 s of 10 ms refreshes")
					}
					fetches.next(t)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := idptest.New(t, "RS256")
			fetches := newIDPFetches()
			tt.cfg.HTTPClient = fetches.client()
			p := newTestIdP(t, iss, tt.cfg)
			old := iss.Sign(t, idpClaims(iss))
			if _, err := p.Verify(context.Background(), old); err != nil {
				t.Fatalf("token of the first key refused: %v", err)
			}

			iss.Rotate(t)
			fresh := iss.Sign(t, idpClaims(iss))
			if _, err := p.Verify(context.Background(), fresh); err != nil {
				t.Fatalf("token of the rotated key refused, no restart should be needed: %v", err)
			}
			if _, err := p.Verify(context.Background(), old); err != nil {
				t.Fatalf("token of the old, still published key refused: %v", err)
			}

			iss.Retire()
			tt.refresh(t, iss, p, old, fetches)
			if _, err := p.Verify(context.Background(), old); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("token of the retired key: %v, want ErrUnauthenticated", err)
			}
			if _, err := p.Verify(context.Background(), fresh); err != nil {
				t.Fatalf("token of the current key refused after the refresh: %v", err)
			}
		})
	}
}

func TestIdPUnknownKIDFetchStorm(t *testing.T) {
	iss := idptest.New(t, "RS256")
	p := newTestIdP(t, iss, IdPConfig{}) // default: one unknown-kid refetch a minute
	tokens := make([]string, 200)
	for i := range tokens {
		tokens[i] = iss.SignWith(t, map[string]any{"kid": fmt.Sprintf("random-%d-%s", i, rand.Text())}, idpClaims(iss))
	}
	before := iss.JWKSRequests()
	var wg sync.WaitGroup
	errs := make([]error, len(tokens))
	for i, tok := range tokens {
		wg.Go(func() { _, errs[i] = p.Verify(context.Background(), tok) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("token %d with an unknown kid: %v", i, err)
		}
	}
	if n := iss.JWKSRequests() - before; n > 2 {
		t.Fatalf("200 unknown kids caused %d JWKS fetches, want at most 2", n)
	}
	// Known keys still work while unknown ones are being refused.
	if _, err := p.Verify(context.Background(), iss.Sign(t, idpClaims(iss))); err != nil {
		t.Fatal(err)
	}
}

func TestIdPOutage(t *testing.T) {
	t.Run("down at start", func(t *testing.T) {
		iss := idptest.New(t, "RS256")
		iss.SetDown(true)
		for name, cfg := range map[string]IdPConfig{
			"discovery": {Name: "corp-sso", Issuer: iss.URL(), Audience: idpAudience},
			"JWKS URL":  {Name: "corp-sso", Issuer: iss.URL(), Audience: idpAudience, JWKSURL: iss.URL() + idptest.JWKSPath},
		} {
			cfg.Logger = slog.New(slog.DiscardHandler)
			_, err := NewIdP(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), "corp-sso") {
				t.Errorf("%s: NewIdP with the IdP down = %v, want an error naming it", name, err)
			}
		}
	})
	t.Run("unreachable at start", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = NewIdP(t.Context(), IdPConfig{Name: "corp-sso", Issuer: "http://" + addr, Audience: idpAudience})
		if err == nil || !strings.Contains(err.Error(), "corp-sso") {
			t.Fatalf("NewIdP with nothing listening = %v, want an error naming the IdP", err)
		}
	})
	t.Run("down after start: known keys keep working", func(t *testing.T) {
		iss := idptest.New(t, "RS256")
		fetches := newIDPFetches()
		p := newTestIdP(t, iss, IdPConfig{RefreshInterval: 10 * time.Millisecond, HTTPClient: fetches.client()})
		iss.SetDown(true)
		// Let two refreshes fail; the cache keeps the keys it has.
		for failed := 0; failed < 2; {
			if fetches.next(t) == http.StatusServiceUnavailable {
				failed++
			}
		}
		if _, err := p.Verify(context.Background(), iss.Sign(t, idpClaims(iss))); err != nil {
			t.Fatalf("token refused during an IdP outage: %v", err)
		}
	})
}

func TestIdPRefreshStopsWithContext(t *testing.T) {
	iss := idptest.New(t, "RS256")
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := NewIdP(ctx, IdPConfig{
		Issuer: iss.URL(), Audience: idpAudience,
		Now: func() time.Time { return idpNow },
		// No idle connections: only the refresh goroutine may outlive a fetch.
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(ctx, iss.Sign(t, idpClaims(iss))); err != nil {
		t.Fatal(err)
	}
	if goleak.Find(ignore) == nil {
		t.Fatal("no refresh goroutine while ctx is live: this test would prove nothing")
	}
	cancel()
	goleak.VerifyNone(t, ignore)
}
