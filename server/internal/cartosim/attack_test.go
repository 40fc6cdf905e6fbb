package cartosim

import (
	"net/url"
	"strings"
	"testing"
)

const evilOrigin = "https://evil.example"

// Finding 7: a web page on another site reads every group's token from the
// emulator's control endpoints (no credentials, and CORS reflected its
// Origin). Now each control endpoint refuses a caller without the control
// token, sends no CORS header, and refuses the preflight; the data APIs keep
// their CORS.
func TestAttackCrossOriginReadsEmulatorTokens(t *testing.T) {
	e := newEnv(t, Config{})
	tok := e.createToken(e.oauth(), tokenReq("carto_dw", bostonSQL, "sql"))
	for _, tc := range []struct {
		method, path string
		headers      []string
	}{
		{"GET", "/_sim/tokens", nil},
		{"GET", "/_sim/tokens", []string{"Authorization", "Bearer wrong"}},
		{"GET", "/_sim/tokens", bearer(tok)}, // a CARTO token is no control token
		{"GET", "/_sim/tokens?access_token=" + tok, nil},
		{"GET", "/_sim/stats", nil},
		{"GET", "/_sim/faults", nil},
		{"PUT", "/_sim/faults", nil},
		{"POST", "/_sim/reset", nil},
		{"GET", "/_sim/nothing", nil},
		// The preflight of a cross-origin call (it never carries credentials).
		{"OPTIONS", "/_sim/tokens", []string{"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization"}},
	} {
		r := e.do(tc.method, tc.path, `{"outage":"unavailable"}`, append([]string{"Origin", evilOrigin}, tc.headers...)...)
		if r.status != 401 {
			t.Errorf("%s %s %v from %s: %d, want 401", tc.method, tc.path, tc.headers, evilOrigin, r.status)
		}
		for k := range r.header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s %s from %s: CORS header %s: %q", tc.method, tc.path, evilOrigin, k, r.header.Get(k))
			}
		}
		if strings.Contains(string(r.body), tok) {
			t.Errorf("%s %s from %s: the body holds the token", tc.method, tc.path, evilOrigin)
		}
	}
	if f := e.sim.Faults(); f != (Faults{}) {
		t.Errorf("faults set without the control token: %+v", f)
	}
	// The data APIs keep their CORS, for map front ends.
	q := "/v3/sql/carto_dw/query?" + url.Values{"q": {bostonSQL}}.Encode()
	r := e.do("GET", q, nil, append([]string{"Origin", "https://app.example.com"}, bearer(tok)...)...)
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("SQL API from a front end: %d, Allow-Origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	r = e.do("OPTIONS", "/v3/sql/carto_dw/query", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "GET")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("SQL API preflight: %d, Allow-Origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
}

// Finding 7: with the control token, the control endpoints answer, still
// without CORS headers; a token given in Config is the one required.
func TestControlEndpointsNeedTheControlToken(t *testing.T) {
	e := newEnv(t, Config{})
	ctl := e.sim.ControlToken()
	if !strings.HasPrefix(ctl, "sim-control-") || len(ctl) < 40 {
		t.Fatalf("generated control token %q", ctl)
	}
	tok := e.createToken(e.oauth(), tokenReq("carto_dw", bostonSQL, "sql"))
	r := e.do("GET", "/_sim/tokens", nil, "Origin", evilOrigin, "Authorization", "Bearer "+ctl)
	if r.status != 200 || !strings.Contains(string(r.body), tok) {
		t.Fatalf("GET /_sim/tokens with the control token: %d %s", r.status, r.body)
	}
	if v := r.header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("control answer with Allow-Origin %q", v)
	}
	if other := newEnv(t, Config{}).sim.ControlToken(); other == ctl {
		t.Error("two emulators share a control token")
	}

	set := newEnv(t, Config{ControlToken: "chosen-control-token"})
	if r := set.do("GET", "/_sim/stats", nil, "Authorization", "bearer chosen-control-token"); r.status != 200 {
		t.Errorf("GET /_sim/stats with Config.ControlToken: %d", r.status)
	}
	if r := set.do("GET", "/_sim/stats", nil, "Authorization", "Bearer "+ctl); r.status != 401 {
		t.Errorf("another emulator's control token: %d", r.status)
	}
}
