package carto

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// oauthSource holds the client's OAuth access token. CARTO counts token
// issuance against a quota, so the token is shared by every call, fetched by
// one request at a time, and refreshed in the background at 80% of its
// lifetime, while the current one is still served.
type oauthSource struct {
	c      *Client
	flight singleflight.Group

	mu          sync.Mutex
	tok         string
	usableUntil time.Time // expiry minus a margin for clock skew
	refreshAt   time.Time
	nextAttempt time.Time // after a failed background refresh, when to try again
}

// refreshBackoff spaces background refresh attempts after a failure, while the
// current token is still good.
const refreshBackoff = 30 * time.Second

func newOAuthSource(c *Client) *oauthSource { return &oauthSource{c: c} }

// token returns a usable OAuth token, fetching one if there is none.
func (o *oauthSource) token(ctx context.Context) (string, error) {
	now := o.c.cfg.Now()
	o.mu.Lock()
	tok, usable := o.tok, o.tok != "" && now.Before(o.usableUntil)
	refresh := usable && !now.Before(o.refreshAt) && !now.Before(o.nextAttempt)
	o.mu.Unlock()
	if usable {
		if refresh {
			o.fetch(ctx) // in the background: this caller keeps the current token
		}
		return tok, nil
	}
	select {
	case r := <-o.fetch(ctx):
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("carto: get OAuth token: %w", ctx.Err())
	}
}

// fetch starts a token fetch unless one is in flight, and returns its result
// channel. The fetch runs detached from the caller: a caller that gives up must
// not fail the others waiting on the same fetch.
func (o *oauthSource) fetch(ctx context.Context) <-chan singleflight.Result {
	detached := context.WithoutCancel(ctx)
	return o.flight.DoChan("oauth", func() (any, error) {
		fctx, cancel := context.WithTimeout(detached, o.c.cfg.FetchTimeout)
		defer cancel()
		obtained := o.c.cfg.Now()
		tok, lifetime, err := o.c.fetchOAuth(fctx)
		o.mu.Lock()
		defer o.mu.Unlock()
		if err != nil {
			o.nextAttempt = o.c.cfg.Now().Add(refreshBackoff)
			o.c.cfg.Logger.Warn("CARTO OAuth token fetch failed", "error", err)
			return "", err
		}
		margin := min(30*time.Second, lifetime/10)
		o.tok = tok
		o.usableUntil = obtained.Add(lifetime - margin)
		o.refreshAt = obtained.Add(lifetime * 8 / 10)
		o.nextAttempt = time.Time{}
		return tok, nil
	})
}

// invalidate drops tok if it is still the current token.
func (o *oauthSource) invalidate(tok string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tok == tok {
		o.tok = ""
	}
}

// fetchOAuth performs the client-credentials grant.
func (c *Client) fetchOAuth(ctx context.Context) (string, time.Duration, error) {
	const op = "get OAuth token"
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.cfg.ClientID},
		"client_secret": {c.cfg.ClientSecret},
		"audience":      {c.cfg.Audience},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.AuthURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, fmt.Errorf("carto: %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	status, body, hdr, err := c.do(req)
	if err != nil {
		return "", 0, transportError(ctx, op, err)
	}
	if status != http.StatusOK {
		e := statusError(op, status, body, hdr).(*Error)
		if status >= 400 && status < 500 && status != http.StatusTooManyRequests {
			// A refused client-credentials grant is a configuration problem
			// (client id, secret or audience), whatever the exact code.
			e.Kind = ErrCredentials
		}
		return "", 0, e
	}
	var r struct {
		AccessToken string  `json:"access_token"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.AccessToken == "" || r.ExpiresIn <= 0 {
		return "", 0, &Error{Op: op, Status: status, Kind: ErrUnavailable, Detail: "response has no access_token or expires_in"}
	}
	return r.AccessToken, time.Duration(r.ExpiresIn * float64(time.Second)), nil
}
