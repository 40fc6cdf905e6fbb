// Package browsertest starts the headless Chromium the browser tests drive
// (the demo page's, the guide frontend's), reaching nothing beyond
// loopback, and collects the errors a page logs.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium finds Debian's Chromium (or TOKENBROKER_CHROMIUM). Without it the
// test is skipped, unless TOKENBROKER_REQUIRE_BROWSER=1 (as .ci/run sets,
// after installing it).
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{os.Getenv("TOKENBROKER_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium here (apt-get install chromium, or set TOKENBROKER_CHROMIUM)"
	if os.Getenv("TOKENBROKER_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start starts a headless Chromium for t, with no sync, component updates
// or pings, and the options given (a window size, software WebGL…), and
// returns its context, which ends after timeout or with the test.
func Start(t testing.TB, timeout time.Duration, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := Chromium(t)
	all := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-pings", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(all, opts...)...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	// The first Do starts the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// Errors are the console messages of a page that a test counts as errors.
type Errors struct {
	mu   sync.Mutex
	list []string
}

// WatchConsole reads the console of ctx (a browser or a tab) until the test
// ends, keeping the messages that isError selects.
func WatchConsole(t testing.TB, ctx context.Context, isError func(chromedp.ConsoleMessage) bool) *Errors {
	e := &Errors{}
	watch, stop := context.WithCancel(ctx)
	messages := chromedp.Console(watch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if isError(m) {
				e.mu.Lock()
				e.list = append(e.list, m.String())
				e.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { stop(); <-done })
	return e
}

// Check fails t for each error seen so far.
func (e *Errors) Check(t testing.TB) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.list {
		t.Errorf("page error: %s", s)
	}
}
