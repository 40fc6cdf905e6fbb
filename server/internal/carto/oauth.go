package carto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// SharedTokens keeps the OAuth token where every replica can see it, with a
// lock so that only one of them fetches a new one.
type SharedTokens interface {
	Load(ctx context.Context) (token string, obtained, expires time.Time, ok bool, err error)
	Save(ctx context.Context, token string, obtained, expires time.Time) error
	// Drop forgets token if it is still the shared one (CARTO refused it).
	Drop(ctx context.Context, token string) error
	// TryLock takes the fetch lock; acquired is false while another holds it.
	TryLock(ctx context.Context, ttl time.Duration) (release func(), acquired bool, err error)
}

// oauthSource holds the client's OAuth access token. CARTO counts token
// issuance against a quota, so the token is shared by every call (and, with
// Config.Shared, by every replica), fetched by one request at a time, and
// refreshed in the background at 80% of its lifetime while the current one
// is still served.
type oauthSource struct {
	c      *Client
	flight singleflight.Group

	mu          sync.Mutex
	tok         string
	usableUntil time.Time // expiry minus a margin for clock skew
	refreshAt   time.Time
	nextAttempt time.Time // after a failed background refresh, when to try again
	// refused: CARTO refused the client credentials on the last fetch that
	// got an answer on them (ErrCredentials); a token obtained clears it.
	refused bool
}

// refreshBackoff spaces background refresh attempts after a failure, while the
// current token is still good.
const refreshBackoff = 30 * time.Second

// minRefreshGap is the least time between two wake-ups of KeepOAuthFresh, so
// that a clock that disagrees with its timer cannot make it spin.
const minRefreshGap = time.Second

// sharedPoll is how often a replica waiting for another's fetch looks again.
const sharedPoll = 50 * time.Millisecond

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

// Warm gets the OAuth token now (the shared one, or from CARTO), so that the
// first caller after a start does not wait for it.
func (c *Client) Warm(ctx context.Context) error {
	_, err := c.oauth.token(ctx)
	return err
}

// CredentialsRefused reports whether CARTO refused the broker's OAuth client
// credentials (ErrCredentials) on the last token fetch, and no token has been
// obtained since: only an operator can fix it. A fetch that fails otherwise
// (CARTO down, rate limited) leaves the answer as it was.
func (c *Client) CredentialsRefused() bool {
	c.oauth.mu.Lock()
	defer c.oauth.mu.Unlock()
	return c.oauth.refused
}

// KeepOAuthFresh gets the OAuth token if there is none, then refreshes it
// at 80% of its life, ahead of the calls that need it, until ctx ends. With
// Config.Shared the replicas' refreshers wake together and fetch one token
// between them (the others adopt it). Callers still refresh a token they
// find due, should this not run.
func (c *Client) KeepOAuthFresh(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.oauth.due() {
			select {
			case <-c.oauth.fetch(ctx):
			case <-ctx.Done():
				return
			}
		}
		t.Reset(c.oauth.untilDue())
	}
}

// due reports whether the token should be fetched now: there is none, or it
// is past its refresh time, and no failed attempt asks to wait.
func (o *oauthSource) due() bool {
	now := o.c.cfg.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	return !now.Before(o.nextAttempt) && (o.tok == "" || !now.Before(o.refreshAt))
}

// untilDue is how long until due may become true.
func (o *oauthSource) untilDue() time.Duration {
	now := o.c.cfg.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	next := o.nextAttempt
	if o.tok != "" && o.refreshAt.After(next) {
		next = o.refreshAt
	}
	return max(next.Sub(now), minRefreshGap)
}

// fetch starts a token fetch unless one is in flight, and returns its result
// channel. The fetch runs detached from the caller: a caller that gives up must
// not fail the others waiting on the same fetch.
func (o *oauthSource) fetch(ctx context.Context) <-chan singleflight.Result {
	detached := context.WithoutCancel(ctx)
	return o.flight.DoChan("oauth", func() (any, error) {
		fctx, cancel := context.WithTimeout(detached, o.c.cfg.FetchTimeout)
		defer cancel()
		tok, err := o.obtain(fctx)
		if err != nil {
			wait := refreshBackoff
			var ce *Error
			if errors.As(err, &ce) {
				wait = max(wait, ce.RetryAfter) // a pause CARTO asked for
			}
			o.mu.Lock()
			o.nextAttempt = o.c.cfg.Now().Add(wait)
			if errors.Is(err, ErrCredentials) {
				o.refused = true
			}
			o.mu.Unlock()
			o.c.cfg.Logger.Warn("CARTO OAuth token fetch failed", "error", err)
			return "", err
		}
		return tok, nil
	})
}

// obtain gets a fresh token: the shared one if another replica refreshed it,
// else from CARTO, under the shared lock so replicas fetch one between them.
func (o *oauthSource) obtain(ctx context.Context) (string, error) {
	sh := o.c.cfg.Shared
	if sh == nil {
		return o.fetchFromCarto(ctx)
	}
	for {
		if tok, ok, err := o.adoptShared(ctx); err != nil || ok {
			return tok, err
		}
		release, acquired, err := sh.TryLock(ctx, o.c.cfg.FetchTimeout)
		if err != nil {
			return "", err
		}
		if acquired {
			tok, err := o.obtainLocked(ctx)
			release()
			return tok, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("carto: wait for another replica's OAuth token: %w", ctx.Err())
		case <-time.After(sharedPoll):
		}
	}
}

func (o *oauthSource) obtainLocked(ctx context.Context) (string, error) {
	// The previous holder may have saved a token just before releasing.
	if tok, ok, err := o.adoptShared(ctx); err != nil || ok {
		return tok, err
	}
	return o.fetchFromCarto(ctx)
}

func (o *oauthSource) fetchFromCarto(ctx context.Context) (string, error) {
	obtained := o.c.cfg.Now()
	tok, lifetime, err := o.c.fetchOAuth(ctx)
	if err != nil {
		return "", err
	}
	if sh := o.c.cfg.Shared; sh != nil {
		if err := sh.Save(ctx, tok, obtained, obtained.Add(lifetime)); err != nil {
			o.c.cfg.Logger.Warn("CARTO OAuth token not shared with other replicas", "error", err)
		}
	}
	o.set(tok, obtained, lifetime)
	return tok, nil
}

// adoptShared takes the shared token if it is usable and not yet due for
// refresh (a due one must be refreshed, by whoever takes the lock).
func (o *oauthSource) adoptShared(ctx context.Context) (string, bool, error) {
	tok, obtained, expires, ok, err := o.c.cfg.Shared.Load(ctx)
	if err != nil || !ok {
		return "", false, err
	}
	lifetime := expires.Sub(obtained)
	now := o.c.cfg.Now()
	if lifetime <= 0 || !now.Before(obtained.Add(lifetime*8/10)) || !now.Before(expires.Add(-skewMargin(lifetime))) {
		return "", false, nil
	}
	o.set(tok, obtained, lifetime)
	return tok, true, nil
}

// skewMargin is how long before its expiry a token is no longer used, so
// clock skew with CARTO never makes it arrive expired.
func skewMargin(lifetime time.Duration) time.Duration { return min(30*time.Second, lifetime/10) }

func (o *oauthSource) set(tok string, obtained time.Time, lifetime time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tok = tok
	o.usableUntil = obtained.Add(lifetime - skewMargin(lifetime))
	o.refreshAt = obtained.Add(lifetime * 8 / 10)
	o.nextAttempt = time.Time{}
	o.refused = false
}

// invalidate drops tok, here and for every replica, if it is still current.
func (o *oauthSource) invalidate(ctx context.Context, tok string) {
	o.mu.Lock()
	if o.tok == tok {
		o.tok = ""
	}
	o.mu.Unlock()
	if sh := o.c.cfg.Shared; sh != nil {
		if err := sh.Drop(ctx, tok); err != nil {
			o.c.cfg.Logger.Warn("refused CARTO OAuth token not dropped from the shared store", "error", err)
		}
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
	status, body, hdr, err := c.send(ctx, op, idempotent, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.AuthURL, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		return req, nil
	}, nil)
	if err != nil {
		return "", 0, err
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
