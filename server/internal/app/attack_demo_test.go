package app_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// Finding 7: in demo mode, a web page on another site asks the emulator's
// control endpoint for every group's token (the review read Boston's and
// New York's). It is refused, with no CORS header to let the page read the
// answer, and so is the preflight; the data APIs keep their CORS.
func TestAttackWebPageReadsDemoTokens(t *testing.T) {
	b := startBroker(t, brokertest.Demo())
	var tokens []string
	for _, u := range [][2]string{{"user.boston@acme.com", "boston"}, {"user.ny@acme.com", "ny"}} {
		_, tok := b.post("/carto-token", b.login(u[0], u[1]), "")
		tokens = append(tokens, tok["token"].(string))
	}
	const page = "https://evil.example"
	send := func(method, path string, hdr http.Header) (*http.Response, string) {
		req, _ := http.NewRequest(method, b.simURL+path, nil)
		req.Header = hdr
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	for _, tc := range []struct {
		method string
		hdr    http.Header
	}{
		{http.MethodGet, http.Header{"Origin": {page}}},
		{http.MethodGet, http.Header{"Origin": {page}, "Authorization": {"Bearer " + tokens[0]}}},
		{http.MethodOptions, http.Header{"Origin": {page}, "Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"authorization"}}},
	} {
		resp, body := send(tc.method, "/_sim/tokens", tc.hdr)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s /_sim/tokens from %s: %d, want 401", tc.method, page, resp.StatusCode)
		}
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("%s /_sim/tokens from %s: Access-Control-Allow-Origin %q", tc.method, page, v)
		}
		for i, tok := range tokens {
			if strings.Contains(body, tok) {
				t.Errorf("%s /_sim/tokens from %s: the answer holds group %d's token", tc.method, page, i)
			}
		}
	}
	// A map front end still calls the data APIs cross-origin.
	resp, _ := send(http.MethodGet, "/v3/sql/carto_dw/query?"+url.Values{"q": {bostonSQL}}.Encode(),
		http.Header{"Origin": {"https://app.acme.com"}, "Authorization": {"Bearer " + tokens[0]}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.acme.com" {
		t.Errorf("SQL API from a front end: %d, Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}
