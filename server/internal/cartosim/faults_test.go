package cartosim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// handlerDone wraps a Sim so a test can see when a request's handler ends.
func handlerDone(s *Sim) (http.Handler, <-chan struct{}) {
	done := make(chan struct{}, 16)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		s.ServeHTTP(w, r)
	}), done
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running after the client left")
	}
}

func TestFaultLatency(t *testing.T) {
	e := newEnv(t, Config{})
	e.sim.SetFaults(Faults{Latency: 15 * time.Millisecond})
	start := time.Now()
	if r := e.do("GET", "/v3/tokens", nil); r.status != 401 {
		t.Errorf("status %d", r.status)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Errorf("answered after %v", d)
	}

	// A client that gives up stops the wait.
	h, done := handlerDone(e.sim)
	srv := httptest.NewServer(h)
	defer srv.Close()
	e.sim.SetFaults(Faults{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v3/tokens", nil)
	start = time.Now()
	if _, err := srv.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	waitDone(t, done)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if st := e.sim.Stats(); st.Faulted != 0 {
		t.Errorf("latency counted as a fault: %+v", st)
	}
}

func TestFaultResponses(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		status int
		body   string
		retry  string
	}{
		{"error rate 1", Faults{ErrorRate: 1}, 500, `{"error":"Internal Server Error"}`, ""},
		{"unavailable", Faults{Outage: OutageUnavailable}, 503, `{"error":"Service Unavailable"}`, ""},
		{"rate limit default", Faults{RateLimit: true}, 429, "", "1"},
		{"rate limit rounds up", Faults{RateLimit: true, RetryAfter: 1500 * time.Millisecond}, 429, "", "2"},
		{"rate limit whole", Faults{RateLimit: true, RetryAfter: 3 * time.Second}, 429, "", "3"},
		{"outage beats rate limit", Faults{Outage: OutageUnavailable, RateLimit: true, ErrorRate: 1}, 503, "", ""},
		{"rate limit beats errors", Faults{RateLimit: true, ErrorRate: 1}, 429, "", "1"},
		{"error rate 0", Faults{ErrorRate: 0}, 401, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.sim.SetFaults(tc.faults)
			r := e.do("GET", "/v3/tokens", nil, "Origin", "https://app.example.com")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			if tc.body != "" && string(r.body) != tc.body {
				t.Errorf("body %s", r.body)
			}
			if got := r.header.Get("Retry-After"); got != tc.retry {
				t.Errorf("Retry-After %q, want %q", got, tc.retry)
			}
			if r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
				t.Error("faulted response lacks CORS")
			}
			wantFaulted := int64(1)
			if tc.status == 401 {
				wantFaulted = 0
			}
			if st := e.sim.Stats(); st.Faulted != wantFaulted || st.Requests != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestFaultErrorRateFraction(t *testing.T) {
	e := newEnv(t, Config{})
	e.sim.SetFaults(Faults{ErrorRate: 0.5})
	n500 := 0
	for range 200 {
		if e.do("GET", "/v3/tokens", nil).status == 500 {
			n500++
		}
	}
	if n500 < 50 || n500 > 150 {
		t.Errorf("%d of 200 requests failed at rate 0.5", n500)
	}
}

func TestFaultDrop(t *testing.T) {
	e := newEnv(t, Config{})
	e.sim.SetFaults(Faults{Outage: OutageDrop})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Get(e.srv.URL + "/oauth/token")
	if err == nil {
		res.Body.Close()
		t.Fatalf("got a response %d, want a transport error", res.StatusCode)
	}
	if st := e.sim.Stats(); st.Faulted < 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultHang(t *testing.T) {
	s, err := New(Config{ClientID: testClient, ClientSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	h, done := handlerDone(s)
	srv := httptest.NewServer(h)
	defer srv.Close()
	s.SetFaults(Faults{Outage: OutageHang})
	client := &http.Client{Timeout: 40 * time.Millisecond}
	_, err = client.Get(srv.URL + "/v3/sql/c/query?q=x")
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a client timeout", err)
	}
	waitDone(t, done)
	if st := s.Stats(); st.Faulted != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultScope(t *testing.T) {
	endpoints := map[Scope]struct{ method, path string }{
		ScopeOAuth:  {"POST", "/oauth/token"},
		ScopeTokens: {"GET", "/v3/tokens"},
		ScopeData:   {"GET", "/v3/sql/c/query?q=x"},
		"maps":      {"GET", "/v3/maps/c/query/tilejson?q=x"},
		"unknown":   {"GET", "/elsewhere"},
	}
	tests := []struct {
		scope Scope
		hit   []Scope
	}{
		{"", []Scope{ScopeOAuth, ScopeTokens, ScopeData, "maps", "unknown"}},
		{ScopeAll, []Scope{ScopeOAuth, ScopeTokens, ScopeData, "maps", "unknown"}},
		{ScopeOAuth, []Scope{ScopeOAuth}},
		{ScopeTokens, []Scope{ScopeTokens}},
		{ScopeData, []Scope{ScopeData, "maps"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.scope), func(t *testing.T) {
			e := newEnv(t, Config{})
			e.sim.SetFaults(Faults{Outage: OutageUnavailable, Scope: tc.scope})
			for name, ep := range endpoints {
				r := e.do(ep.method, ep.path, nil)
				hit := strings.Contains(" "+scopesString(tc.hit)+" ", " "+string(name)+" ")
				if (r.status == 503) != hit {
					t.Errorf("%s: status %d, hit=%v", name, r.status, hit)
				}
			}
		})
	}
}

func scopesString(s []Scope) string {
	var parts []string
	for _, x := range s {
		parts = append(parts, string(x))
	}
	return strings.Join(parts, " ")
}

func TestFaultsJSON(t *testing.T) {
	f := Faults{Latency: 250 * time.Millisecond, ErrorRate: 0.25, RateLimit: true, RetryAfter: 2 * time.Second, Outage: OutageHang, Scope: ScopeData}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"latency":"250ms","error_rate":0.25,"rate_limit":true,"retry_after":"2s","outage":"hang","scope":"data"}`
	if string(b) != want {
		t.Errorf("marshal:\n got %s\nwant %s", b, want)
	}
	var back Faults
	if err := json.Unmarshal(b, &back); err != nil || back != f {
		t.Errorf("round trip: %+v %v", back, err)
	}
	if b, _ := json.Marshal(Faults{}); string(b) != `{"latency":"0s","error_rate":0,"rate_limit":false,"retry_after":"0s","outage":"","scope":""}` {
		t.Errorf("zero: %s", b)
	}
	tests := []struct {
		in   string
		want Faults
		ok   bool
	}{
		{`{"latency":250,"retry_after":1500.5}`, Faults{Latency: 250 * time.Millisecond, RetryAfter: 1500500 * time.Microsecond}, true},
		{`{"latency":null,"retry_after":""}`, Faults{}, true},
		{`{}`, Faults{}, true},
		{`{"outage":"drop","scope":"all"}`, Faults{Outage: OutageDrop, Scope: ScopeAll}, true},
		{`{"latency":"soon"}`, Faults{}, false},
		{`{"latency":true}`, Faults{}, false},
		{`{"latency":"-1s"}`, Faults{}, false},
		{`{"error_rate":1.5}`, Faults{}, false},
		{`{"outage":"fire"}`, Faults{}, false},
		{`{"scope":"maps"}`, Faults{}, false},
	}
	for _, tc := range tests {
		var got Faults
		err := json.Unmarshal([]byte(tc.in), &got)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("unmarshal %s = %+v, %v", tc.in, got, err)
		}
	}
}
