package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// idpMaxDiscoveryBody bounds the discovery document read at start.
const idpMaxDiscoveryBody = 1 << 20

// idpDiscover reads the IdP's discovery document and returns its jwks_uri.
func idpDiscover(ctx context.Context, cfg *IdPConfig) (string, error) {
	// OIDC Discovery §4: a trailing slash of the issuer is not doubled.
	u := strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("discovery at %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery at %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery at %s: HTTP status %d", u, resp.StatusCode)
	}
	var doc struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, idpMaxDiscoveryBody)).Decode(&doc); err != nil {
		return "", fmt.Errorf("discovery at %s: %w", u, err)
	}
	// OIDC Discovery §4.3: the issuer must be exactly the configured one, or
	// the document (and its keys) may belong to someone else.
	if doc.Issuer != cfg.Issuer {
		return "", fmt.Errorf("discovery at %s names issuer %q, want exactly %q", u, doc.Issuer, cfg.Issuer)
	}
	if err := idpCheckURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery at %s: jwks_uri: %w", u, err)
	}
	// The list is about ID tokens; access tokens may differ, so a mismatch
	// is only worth a warning.
	if len(doc.Algs) > 0 && !slices.ContainsFunc(cfg.Algorithms, func(a string) bool { return slices.Contains(doc.Algs, a) }) {
		cfg.Logger.WarnContext(ctx, "identity provider advertises none of the configured algorithms",
			"idp", cfg.Name, "configured", cfg.Algorithms, "advertised", doc.Algs)
	}
	return doc.JWKSURI, nil
}

// idpCheckURL accepts an absolute https URL with a host, or an http one whose
// host is loopback (a local test IdP). Plain http to anywhere else would let
// anyone on the path replace the discovery document or the keys, and so sign
// tokens the broker accepts.
func idpCheckURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%q is not an absolute https URL", s)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%q is plain http: use https (http is accepted only for a loopback host: 127.0.0.0/8, ::1, localhost)", s)
	}
	return nil
}

// isLoopback reports whether host (no port, no brackets) is a loopback
// address or localhost.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// idpCheckRedirect holds a redirect to the rules of a configured URL, so an
// https discovery or JWKS URL cannot be downgraded to plain http.
func idpCheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if err := idpCheckURL(req.URL.String()); err != nil {
		return fmt.Errorf("redirect: %w", err)
	}
	return nil
}

// idpHTTPTimeout is the deadline keyfunc puts on a background JWKS fetch: the
// client's own timeout when it has one.
func idpHTTPTimeout(c *http.Client) time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return idpDefaultHTTPTimeout
}
