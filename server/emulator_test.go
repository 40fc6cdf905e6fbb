package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// controlLine is the printed command that reads the emulator's counters.
var controlLine = regexp.MustCompile(`curl -s -H "Authorization: Bearer (\S+)" (http://\S+)/_sim/stats`)

// runPrinting runs cmd (serve or runEmulator) until the test ends and
// returns the control token and emulator URL it printed.
func runPrinting(t *testing.T, cmd func(ctx context.Context, stdout io.Writer) error) (token, base string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- cmd(ctx, pw); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("command returned %v", err)
		}
	})
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sent := false; sc.Scan(); {
			if m := controlLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m
				sent = true
			}
		}
		close(found)
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case m, ok := <-found:
		if !ok {
			t.Fatal("no control command printed")
		}
		return m[1], m[2]
	case <-time.After(30 * time.Second):
		t.Fatal("nothing printed after 30s")
	}
	return "", ""
}

// checkControl: the printed command works, and the same request without
// the token, or from a web page, is refused without CORS headers.
func checkControl(t *testing.T, token, base string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(auth string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, base+"/_sim/stats", nil)
		req.Header.Set("Origin", "https://evil.example")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("Bearer " + token); r.StatusCode != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("the printed command: %d, Allow-Origin %q", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
	}
	if r := get(""); r.StatusCode != http.StatusUnauthorized || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("without the token: %d, Allow-Origin %q", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
	}
}

// Finding 7: the demo's how-to prints the emulator's control token with the
// command that reads its counters, and that command works as printed.
func TestDemoPrintsEmulatorControlToken(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	token, base := runPrinting(t, func(ctx context.Context, stdout io.Writer) error {
		return serve(ctx, []string{"--demo", "--port", "0", "--grpc-port", "0", "--emulator-port", "0", "--env-file="},
			env, stdout, io.Discard)
	})
	checkControl(t, token, base)
}

// Finding 7: `tokenbroker cartosim` prints its control token the same way.
func TestEmulatorCommandPrintsControlToken(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	token, base := runPrinting(t, func(ctx context.Context, stdout io.Writer) error {
		return runEmulator(ctx, []string{"--port", "0"}, env, stdout, io.Discard)
	})
	checkControl(t, token, base)
}
