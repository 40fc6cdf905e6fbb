// Package carto is a client of the CARTO 3 platform APIs the broker needs: the
// OAuth client-credentials token endpoint and the Tokens API that creates,
// lists and deletes API access tokens. It holds one OAuth access token per
// client, refreshed before it expires, with one fetch in flight at a time.
//
// The wire format follows docs/CARTO-API.md; where CARTO's behaviour is not
// known (status codes of create and delete, the shape of a list), the client
// accepts every plausible form.
package carto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultAudience is the audience CARTO requires in client-credentials grants.
const DefaultAudience = "carto-cloud-native-api"

// maxResponse bounds how much of a CARTO response is read.
const maxResponse = 1 << 20

// Config configures a Client.
type Config struct {
	BaseURL      string // CARTO API base URL, e.g. https://gcp-us-east1.api.carto.com
	AuthURL      string // OAuth token endpoint (required)
	ClientID     string
	ClientSecret string
	Audience     string       // DefaultAudience when empty
	HTTPClient   *http.Client // a client with a 30 s timeout when nil
	Now          func() time.Time
	Logger       *slog.Logger
	// FetchTimeout bounds one OAuth token fetch, which runs detached from the
	// callers that wait for it. 30 s when zero.
	FetchTimeout time.Duration
	// Shared, when set, shares the OAuth token between replicas: one fetches
	// it, all use it, and a restart finds it again.
	Shared SharedTokens
	// Pauses, when set, shares the pauses CARTO asks for (a 429's
	// Retry-After, per endpoint) between replicas: while one lasts, no
	// replica calls that endpoint.
	Pauses SharedPauses
	// CallTimeout bounds each attempt of a call, within the caller's own
	// deadline. 10 s when zero.
	CallTimeout time.Duration
	// QueryTimeout bounds each attempt of a query (QueryRows, each step of
	// QueryGeoJSON), reading its answer included, within the caller's own
	// deadline. 30 s when zero.
	QueryTimeout time.Duration
	// MaxAttempts is how many times a call is tried when a retry is safe
	// (see retryPolicy). 3 when zero.
	MaxAttempts int
	// BreakerThreshold consecutive failures open the circuit breaker for
	// BreakerCooldown: calls then fail at once instead of waiting on a CARTO
	// that is down. 5 and 10 s when zero; a negative threshold disables it.
	// The SQL and Maps APIs have a breaker of their own, with the same
	// settings.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// Observe, when set, is told about every attempt of a call: the
	// endpoint (oauth, create, list, delete, sql, maps), its outcome (ok, rate_limited,
	// server_error, client_error, transport_error, and, for calls not made,
	// paused or circuit_open) and its duration.
	Observe func(endpoint, outcome string, d time.Duration)
}

// Client calls CARTO. It is safe for concurrent use.
type Client struct {
	cfg     Config
	base    *url.URL
	oauth   *oauthSource
	breaker *breaker // the OAuth and Tokens APIs
	// dataBreaker is the SQL and Maps APIs' (see breakerFor).
	dataBreaker *breaker
	pauses      *pauses
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 30 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 30 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.BreakerThreshold == 0 {
		cfg.BreakerThreshold = 5
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = 10 * time.Second
	}
	var errs []error
	base, err := parseHTTPURL(cfg.BaseURL)
	if err != nil {
		errs = append(errs, fmt.Errorf("CARTO base URL: %w", err))
	}
	if _, err := parseHTTPURL(cfg.AuthURL); err != nil {
		errs = append(errs, fmt.Errorf("CARTO auth URL: %w", err))
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		errs = append(errs, errors.New("CARTO client id and secret are required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c := &Client{cfg: cfg, base: base, pauses: newPauses(cfg),
		breaker:     &breaker{threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, now: cfg.Now},
		dataBreaker: &breaker{threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, now: cfg.Now},
	}
	c.oauth = newOAuthSource(c)
	return c, nil
}

func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%q is not an http(s) URL", s)
	}
	return u, nil
}

// BaseURL is the CARTO API base URL the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// Grant is one source an API access token may read.
type Grant struct {
	ConnectionName string `json:"connection_name"`
	Source         string `json:"source"`
}

// CreateTokenRequest describes an API access token to create.
type CreateTokenRequest struct {
	Grants      []Grant
	AllowedAPIs []string
	Referers    []string
	ExpiresAt   time.Time // CARTO tokens never expire unless given a date
	Name        string    // a label that marks the token as the broker's
}

// APIToken is an API access token as CARTO describes it.
type APIToken struct {
	Token       string
	Name        string
	Grants      []Grant
	AllowedAPIs []string
	Referers    []string
	ExpiresAt   time.Time // zero when the token never expires
	CreatedAt   time.Time // zero when CARTO did not say
}

// tokenJSON is the Tokens API's representation of a token.
type tokenJSON struct {
	Token          string   `json:"token,omitempty"`
	Name           string   `json:"name,omitempty"`
	Grants         []Grant  `json:"grants"`
	Referers       []string `json:"referers"`
	AllowedAPIs    []string `json:"allowed_apis"`
	ExpirationDate string   `json:"expiration_date,omitempty"`
	CreatedAt      string   `json:"created_at,omitempty"`
}

func (t tokenJSON) apiToken() APIToken {
	out := APIToken{Token: t.Token, Name: t.Name, Grants: t.Grants, AllowedAPIs: t.AllowedAPIs, Referers: t.Referers}
	out.ExpiresAt, _ = time.Parse(time.RFC3339, t.ExpirationDate)
	out.CreatedAt, _ = time.Parse(time.RFC3339, t.CreatedAt)
	return out
}

// CreateToken creates an API access token.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (APIToken, error) {
	const op = "create token"
	body := tokenJSON{Name: req.Name, Grants: req.Grants, Referers: req.Referers, AllowedAPIs: req.AllowedAPIs}
	if body.Referers == nil {
		body.Referers = []string{} // CARTO reads an empty list as "any origin"
	}
	if !req.ExpiresAt.IsZero() {
		body.ExpirationDate = req.ExpiresAt.UTC().Format(time.RFC3339)
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return APIToken{}, fmt.Errorf("carto: %s: encode: %w", op, err)
	}
	resp, err := c.tokensCall(ctx, op, creates, http.MethodPost, "", payload)
	if err != nil {
		return APIToken{}, err
	}
	var created tokenJSON
	if err := json.Unmarshal(resp, &created); err != nil || created.Token == "" {
		return APIToken{}, &Error{Op: op, Kind: ErrUnavailable, Detail: "response has no token"}
	}
	tok := created.apiToken()
	if tok.ExpiresAt.IsZero() {
		tok.ExpiresAt = req.ExpiresAt
	}
	return tok, nil
}

// DeleteToken deletes an API access token. It returns an error wrapping
// ErrNotFound when CARTO does not know the token.
func (c *Client) DeleteToken(ctx context.Context, token string) error {
	_, err := c.tokensCall(ctx, "delete token", idempotent, http.MethodDelete, "/"+url.PathEscape(token), nil)
	return err
}

// ListTokens lists the API access tokens of the broker's OAuth client.
func (c *Client) ListTokens(ctx context.Context) ([]APIToken, error) {
	const op = "list tokens"
	resp, err := c.tokensCall(ctx, op, idempotent, http.MethodGet, "", nil)
	if err != nil {
		return nil, err
	}
	// CARTO's list shape is not documented: accept a bare array or an object
	// wrapping it under one of the usual names.
	var list []tokenJSON
	if err := json.Unmarshal(resp, &list); err != nil {
		var wrapped map[string]json.RawMessage
		if err := json.Unmarshal(resp, &wrapped); err != nil {
			return nil, &Error{Op: op, Kind: ErrUnavailable, Detail: "unreadable token list"}
		}
		found := false
		for _, name := range []string{"tokens", "results", "data"} {
			if raw, ok := wrapped[name]; ok {
				if err := json.Unmarshal(raw, &list); err != nil {
					return nil, &Error{Op: op, Kind: ErrUnavailable, Detail: "unreadable token list"}
				}
				found = true
				break
			}
		}
		if !found {
			return nil, &Error{Op: op, Kind: ErrUnavailable, Detail: "token list in an unknown shape"}
		}
	}
	out := make([]APIToken, 0, len(list))
	for _, t := range list {
		out = append(out, t.apiToken())
	}
	return out, nil
}

// jsonRequest is a call to CARTO with a bearer token: it accepts JSON and
// sends body (nil: none) as JSON. Its error never quotes the URL, which may
// hold a token or a query.
func jsonRequest(ctx context.Context, method, target, bearer string, body []byte) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("cannot build the request")
	}
	r.Header.Set("Authorization", "Bearer "+bearer)
	r.Header.Set("Accept", "application/json")
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return r, nil
}

// tokensCall makes one Tokens API call with the OAuth token. A 401 means the
// OAuth token is no longer good (revoked, or the clock disagrees): it is
// dropped and the call is made once more with a fresh one. A 401 creates
// nothing, so the retry cannot create a second token.
func (c *Client) tokensCall(ctx context.Context, op string, policy retryPolicy, method, path string, body []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		bearer, err := c.oauth.token(ctx)
		if err != nil {
			return nil, err
		}
		status, respBody, hdr, err := c.send(ctx, op, policy, func(ctx context.Context) (*http.Request, error) {
			return jsonRequest(ctx, method, c.base.String()+"/v3/tokens"+path, bearer, body)
		}, nil)
		if err != nil {
			return nil, err
		}
		switch {
		case status >= 200 && status < 300:
			return respBody, nil
		case status == http.StatusUnauthorized && attempt == 0:
			c.oauth.invalidate(ctx, bearer)
			continue
		}
		return nil, statusError(op, status, respBody, hdr)
	}
}

// bodyReader reads the body of a 2xx answer (see send).
type bodyReader func(body io.Reader, hdr http.Header) error

// readVerdict carries the error a bodyReader returned about an answer it
// read whole or refused: CARTO's answer, not a transport failure.
type readVerdict struct{ err error }

func (v *readVerdict) Error() string { return v.err.Error() }

// readErrors remembers the first failure to read a body (other than its
// end), so a bodyReader's error can be told from the transport's.
type readErrors struct {
	r   io.Reader
	err error
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// do sends req and reads at most maxResponse bytes of the answer, or hands
// a 2xx answer's body to read when it is not nil.
func (c *Client) do(req *http.Request, read bodyReader) (int, []byte, http.Header, error) {
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	if read != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		body := &readErrors{r: resp.Body}
		err := read(body, resp.Header)
		switch {
		case body.err != nil:
			return 0, nil, nil, body.err
		case err != nil:
			return resp.StatusCode, nil, resp.Header, &readVerdict{err}
		}
		return resp.StatusCode, nil, resp.Header, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, b, resp.Header, nil
}

// transportError classifies a failure to get any answer. The caller's own
// cancellation or deadline is passed through as such, not blamed on CARTO.
func transportError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("carto: %s: %w", op, ctxErr)
	}
	return &Error{Op: op, Kind: ErrUnavailable, Detail: redactURL(err)}
}

// redactURL drops the URL from a *url.Error: request URLs of the Tokens API
// hold token values.
func redactURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// statusError classifies a non-2xx answer.
func statusError(op string, status int, body []byte, hdr http.Header) error {
	e := &Error{Op: op, Status: status, Detail: upstreamMessage(body)}
	switch {
	case status == http.StatusTooManyRequests:
		e.Kind = ErrRateLimited
		e.RetryAfter = retryAfter(hdr.Get("Retry-After"))
	case status == http.StatusNotFound:
		e.Kind = ErrNotFound
	case status == http.StatusUnauthorized:
		e.Kind = ErrCredentials
	case status >= 500:
		e.Kind = ErrUnavailable
	default:
		e.Kind = ErrRejected
	}
	return e
}

// upstreamMessage extracts CARTO's error text ({error, description} or the
// OAuth {error, error_description}), bounded, for the operator's log.
func upstreamMessage(body []byte) string { return bounded(upstreamText(body)) }

// upstreamText is CARTO's error text, whole.
func upstreamText(body []byte) string {
	var m struct {
		Error            string `json:"error"`
		Description      string `json:"description"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	return strings.TrimSpace(strings.Join([]string{m.Error, m.Description, m.ErrorDescription}, " "))
}

// bounded cuts a message for a log line.
func bounded(msg string) string {
	if len(msg) > 200 {
		msg = strings.ToValidUTF8(msg[:200], "") + "…"
	}
	return msg
}

// retryAfter parses a Retry-After header, seconds or an HTTP date, bounded
// by maxPause.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(min(s, int(maxPause/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(maxPause, max(0, time.Until(t)))
	}
	return 0
}
