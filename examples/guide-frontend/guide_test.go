// Package guidefrontend_test runs CARTO's "integrate CARTO in your existing
// application" frontend (app/, the guide's code with TokenBroker as its
// backend) in headless Chromium against a demo broker: it logs in, gets a
// CARTO token, and deck.gl draws the group's stores through the broker's
// CARTO gateway. The test counts the features of the tiles the page fetched.
package guidefrontend_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/browsertest"
)

// appDir is the guide's frontend: an npm project (its own go.mod keeps its
// node_modules out of this module).
const appDir = "app"

// tilePath is a tile of a query source, as the emulator's tilejson names it.
var tilePath = regexp.MustCompile(`/v3/maps/carto_dw/query/\d+/\d+/\d+$`)

// instantiationPath is the map instantiation deck.gl's vectorQuerySource
// sends first.
var instantiationPath = regexp.MustCompile(`/v3/maps/carto_dw/query$`)

// The guide's flow, as each demo user: log in, get the group's CARTO token,
// and see deck.gl draw only the group's stores, all of them, fetched through
// the broker's CARTO gateway (<RESTURL>/carto). Then a tampered page, the
// same app sending another city as @groupcity, is refused at the
// instantiation and fetches no tile.
func TestGuideFrontend(t *testing.T) {
	b := brokertest.Start(t, brokertest.Demo())
	site := serve(t, build(t, appDir, b.RESTURL+"/carto", b.RESTURL))
	ctx := browser(t)

	for _, u := range demoUsers {
		t.Run(u.group, func(t *testing.T) { drawsGroup(t, b, ctx, site, u) })
	}

	// A tampered page: the Boston user's page asks for New York's stores,
	// with the Boston token. A script that the test adds before the app runs
	// rewrites the queryParameters of deck.gl's requests (the page's own code
	// is unchanged); the broker refuses the instantiation, so deck.gl has no
	// tilejson and fetches no tile.
	t.Run("tampered", func(t *testing.T) {
		before := b.Emulator.Stats()
		tab, net, errs := newTab(t, ctx)
		_, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: tamper("NEW YORK")})
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(tab, chromedp.Navigate(site), login(brokertest.BostonUser, brokertest.BostonPassword)); err != nil {
			t.Fatal(err)
		}
		loaded := waitLoaded(t, tab)
		net.logRequests(t)
		inst := net.find(func(e *exchange) bool { return e.method == http.MethodGet && instantiationPath.MatchString(e.path()) })
		if len(inst) != 1 {
			t.Fatalf("%d instantiation requests, want 1; requests: %s", len(inst), net.summary())
		}
		if qp := inst[0].query().Get("queryParameters"); !strings.Contains(qp, "NEW YORK") {
			t.Fatalf("the tampered page sent queryParameters %q", qp)
		}
		if inst[0].status != http.StatusForbidden {
			t.Errorf("the tampered instantiation got HTTP %d, want 403", inst[0].status)
		}
		if len(loaded.Errors) == 0 || loaded.Features != 0 || loaded.ViewportLoads != 0 {
			t.Errorf("page: errors %q, %d features drawn, %d views loaded; want a refusal and nothing drawn", loaded.Errors, loaded.Features, loaded.ViewportLoads)
		}
		if follow := net.find(func(e *exchange) bool { return strings.Contains(e.path(), "/v3/maps/carto_dw/query/") }); len(follow) > 0 {
			t.Errorf("after the refusal the page fetched %s", net.summary())
		}
		// Nothing reached CARTO: no answer, and no refusal by CARTO either
		// (the broker refused it first).
		after := b.Emulator.Stats()
		if n, r := after.MapsQueries-before.MapsQueries, after.Refused-before.Refused; n != 0 || r != 0 {
			t.Errorf("the emulator answered %d maps requests and refused %d for the tampered page, want 0 and 0", n, r)
		}
		t.Logf("tampered: instantiation HTTP %d, deck.gl error %q, no tile fetched", inst[0].status, loaded.Errors)
		errs.Check(t)
	})
}

type demoUser struct{ user, password, group string }

var demoUsers = []demoUser{
	{brokertest.BostonUser, brokertest.BostonPassword, "BOSTON"},
	{brokertest.NYUser, brokertest.NYPassword, "NEW YORK"},
}

// drawsGroup logs in as the user on a new tab of the app at site, waits
// until deck.gl has loaded the view's tiles, and checks that the tiles hold
// every store of the user's group and no other.
func drawsGroup(t *testing.T, b *brokertest.Broker, ctx context.Context, site string, u demoUser) {
	want := b.StoresOf(t, u.group)
	tab, net, errs := newTab(t, ctx)
	if err := chromedp.Do(tab, chromedp.Navigate(site), login(u.user, u.password)); err != nil {
		t.Fatal(err)
	}
	loaded := waitLoaded(t, tab)
	net.logRequests(t)
	if len(loaded.Errors) > 0 || loaded.LoginError != "" {
		t.Fatalf("deck.gl errors %q, login error %q; requests: %s", loaded.Errors, loaded.LoginError, net.summary())
	}
	// The instantiation goes through the broker's gateway, with the guide's
	// parameterised query.
	inst := net.find(func(e *exchange) bool { return e.method == http.MethodGet && instantiationPath.MatchString(e.path()) })
	if len(inst) != 1 || !strings.HasPrefix(inst[0].url, b.RESTURL+"/carto/v3/") || !strings.HasSuffix(inst[0].query().Get("q"), "@groupcity") {
		t.Fatalf("want one instantiation at %s/carto with @groupcity; requests: %s", b.RESTURL, net.summary())
	}
	features := net.tileFeatures(t, tab)
	cities := map[string]int{}
	for _, f := range features {
		cities[fmt.Sprint(f["city"])]++
	}
	t.Logf("%s: %d tiles fetched, %d distinct features (%v), deck.gl drew %d; the emulator has %d stores in %s",
		u.group, len(net.tiles()), len(features), cities, loaded.Features, want, u.group)
	if len(cities) != 1 || cities[u.group] != want {
		t.Errorf("the tiles hold stores of %v, want %d of %s alone", cities, want, u.group)
	}
	if loaded.Features != want {
		t.Errorf("deck.gl drew %d features, want %d", loaded.Features, want)
	}
	errs.Check(t)
}

// tamper is a script run before the app: it rewrites the @groupcity that
// deck.gl sends to CARTO, as a user editing the page could.
func tamper(city string) string {
	return `(() => {
	const city = ` + jsString(city) + `;
	const realFetch = window.fetch;
	window.fetch = function (input, init) {
		if (typeof input === 'string' && input.includes('/v3/maps/')) {
			const u = new URL(input);
			if (u.searchParams.has('queryParameters')) {
				u.searchParams.set('queryParameters', JSON.stringify({ groupcity: city }));
				input = u.toString();
			}
		}
		return realFetch.call(this, input, init);
	};
})()`
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

// build builds the app with vite, its two URLs set in the environment (real
// variables win over .env), into a temporary folder. Without node_modules
// the test is skipped, unless TOKENBROKER_REQUIRE_NPM=1 (as .ci/run sets,
// after npm ci).
func build(t *testing.T, dir, cartoURL, companyURL string) string {
	t.Helper()
	vite := filepath.Join(dir, "node_modules", ".bin", "vite")
	if _, err := os.Stat(vite); err != nil {
		msg := "no " + vite + ": run `npm ci` in examples/guide-frontend/app (.ci/run does)"
		if os.Getenv("TOKENBROKER_REQUIRE_NPM") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node_modules/.bin/vite", "build", "--outDir", out, "--emptyOutDir", "--logLevel", "warn")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VITE_CARTO_API_BASE_URL="+cartoURL, "VITE_COMPANY_API_BASE_URL="+companyURL)
	start := time.Now()
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vite build: %v\n%s", err, output)
	}
	t.Logf("vite build: %s", time.Since(start).Round(100*time.Millisecond))
	// The URLs are baked into the bundle: check that the environment won.
	bundles, _ := filepath.Glob(filepath.Join(out, "assets", "*.js"))
	var js []byte
	for _, f := range bundles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		js = append(js, b...)
	}
	if !strings.Contains(string(js), cartoURL) {
		t.Fatalf("the bundle does not hold VITE_CARTO_API_BASE_URL %s", cartoURL)
	}
	return out
}

// serve serves the built app on loopback.
func serve(t *testing.T, dist string) string {
	srv := httptest.NewServer(http.FileServer(http.Dir(dist)))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// browser starts a headless Chromium with WebGL in software (deck.gl and
// maplibre draw with it), and no host name resolving: the page reaches
// loopback alone, so the basemap from CARTO's CDN fails at once, as
// offline.
func browser(t *testing.T) context.Context {
	return browsertest.Start(t, 3*time.Minute,
		chromedp.Flag("use-angle", "swiftshader"),
		chromedp.Flag("enable-unsafe-swiftshader", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1100, 800),
	)
}

// newTab opens a tab of the browser, with the log of its network and of its
// script errors.
func newTab(t *testing.T, browser context.Context) (context.Context, *netLog, *browsertest.Errors) {
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	net := &netLog{byID: map[network.RequestID]*exchange{}, changed: make(chan struct{})}
	if err := chromedp.Listen(tab, net.event); err != nil {
		t.Fatal(err)
	}
	// Refused requests and the basemap's failure are logged as errors
	// (maplibre's, deck.gl's); an uncaught exception must not happen.
	errs := browsertest.WatchConsole(t, tab, func(m chromedp.ConsoleMessage) bool { return m.IsException() })
	return tab, net, errs
}

// login fills in the guide's login form and presses Login.
func login(user, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS("#login")),
	)
}

// loaded is what the app's hooks (app/src/hooks.ts) report.
type loaded struct {
	ViewportLoads int      `json:"viewportLoads"`
	Features      int      `json:"features"`
	Errors        []string `json:"errors"`
	LoginError    string   `json:"loginError"`
}

// waitLoaded waits until deck.gl has loaded every tile of the view, or
// reported an error, or the login failed; then reads the hooks.
func waitLoaded(t *testing.T, tab context.Context) loaded {
	t.Helper()
	const state = `({...window.__guide, loginError: document.getElementById('login-error')?.textContent || ''})`
	_, err := chromedp.Run(tab, chromedp.Poll[chromedp.Void](
		`window.__guide.viewportLoads > 0 || window.__guide.errors.length > 0 || document.getElementById('login-error')?.textContent`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second)))
	if err != nil {
		l, _ := chromedp.Run(tab, chromedp.Evaluate[loaded](state))
		t.Fatalf("the page never loaded its tiles: %v; page state %+v", err, l)
	}
	l, err := chromedp.Run(tab, chromedp.Evaluate[loaded](state))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// exchange is one request of the page and its response, from CDP events.
type exchange struct {
	id          network.RequestID
	method, url string
	headers     []string // the request's header names (never their values)
	status      int64
	mime        string
	finished    bool
	failed      string
}

func (e *exchange) parsed() *url.URL {
	u, err := url.Parse(e.url)
	if err != nil {
		return &url.URL{}
	}
	return u
}

func (e *exchange) path() string      { return e.parsed().Path }
func (e *exchange) query() url.Values { return e.parsed().Query() }

// netLog records a tab's requests from its Network events.
type netLog struct {
	mu      sync.Mutex
	byID    map[network.RequestID]*exchange
	order   []*exchange
	changed chan struct{} // closed and replaced at each event
}

// event runs on chromedp's reading goroutine: it must return fast.
func (n *netLog) event(ev any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		e := n.byID[ev.RequestID]
		if e == nil {
			e = &exchange{id: ev.RequestID}
			n.byID[ev.RequestID] = e
			n.order = append(n.order, e)
		}
		e.method, e.url = ev.Request.Method, ev.Request.URL
		e.headers = e.headers[:0]
		for k := range ev.Request.Headers {
			e.headers = append(e.headers, k)
		}
		slices.Sort(e.headers)
	case *network.EventResponseReceived:
		if e := n.byID[ev.RequestID]; e != nil {
			e.status, e.mime = ev.Response.Status, ev.Response.MimeType
		}
	case *network.EventLoadingFinished:
		if e := n.byID[ev.RequestID]; e != nil {
			e.finished = true
		}
	case *network.EventLoadingFailed:
		if e := n.byID[ev.RequestID]; e != nil {
			e.failed = ev.ErrorText
		}
	default:
		return
	}
	close(n.changed)
	n.changed = make(chan struct{})
}

func (n *netLog) find(match func(*exchange) bool) []exchange {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []exchange
	for _, e := range n.order {
		if match(e) {
			out = append(out, *e)
		}
	}
	return out
}

func (n *netLog) tiles() []exchange {
	return n.find(func(e *exchange) bool { return e.method == http.MethodGet && tilePath.MatchString(e.path()) })
}

// tileFeatures waits until every tile request the page made has ended, reads
// the bodies, and returns their GeoJSON features' properties, one per
// feature across tiles (by id, else by properties).
func (n *netLog) tileFeatures(t *testing.T, tab context.Context) []map[string]any {
	t.Helper()
	for {
		n.mu.Lock()
		pending, changed := 0, n.changed
		for _, e := range n.order {
			if e.method == http.MethodGet && tilePath.MatchString(e.path()) && !e.finished && e.failed == "" {
				pending++
			}
		}
		n.mu.Unlock()
		if pending == 0 {
			break
		}
		select {
		case <-changed:
		case <-tab.Done():
			t.Fatalf("%d tile requests never ended: %v", pending, tab.Err())
		}
	}
	tiles := n.tiles()
	if len(tiles) == 0 {
		t.Fatalf("the page fetched no tile; requests: %s", n.summary())
	}
	seen := map[string]bool{}
	var out []map[string]any
	for _, tile := range tiles {
		if tile.failed != "" || tile.status != http.StatusOK {
			t.Fatalf("tile %s: HTTP %d %s", tile.path(), tile.status, tile.failed)
		}
		body, err := chromedp.Call(tab, network.GetResponseBody, network.GetResponseBodyParams{RequestID: tile.id})
		if err != nil {
			t.Fatalf("tile %s: body: %v", tile.path(), err)
		}
		var fc struct {
			Type     string `json:"type"`
			Features []struct {
				ID         any            `json:"id"`
				Properties map[string]any `json:"properties"`
			} `json:"features"`
		}
		if err := json.Unmarshal(body.Body, &fc); err != nil || fc.Type != "FeatureCollection" {
			t.Fatalf("tile %s (%s): not a GeoJSON FeatureCollection: %v", tile.path(), tile.mime, err)
		}
		for _, f := range fc.Features {
			key, _ := json.Marshal(f.Properties)
			if f.ID != nil {
				key, _ = json.Marshal(f.ID)
			}
			if !seen[string(key)] {
				seen[string(key)] = true
				out = append(out, f.Properties)
			}
		}
	}
	return out
}

// summary lists the requests: method, path, status, MIME type.
func (n *netLog) summary() string {
	var b strings.Builder
	for _, e := range n.find(func(*exchange) bool { return true }) {
		fmt.Fprintf(&b, "\n  %s %s -> %d %s %s", e.method, e.path(), e.status, e.mime, e.failed)
	}
	return b.String()
}

// logRequests logs what the page asked of CARTO (the gateway or the
// emulator): method, path, parameters, header names, status and type.
func (n *netLog) logRequests(t *testing.T) {
	t.Helper()
	for _, e := range n.find(func(e *exchange) bool { return strings.Contains(e.path(), "/v3/") }) {
		q := e.query()
		q.Del("access_token") // never in a log
		params, _ := url.QueryUnescape(q.Encode())
		t.Logf("%s %s ? %s [headers %s] -> %d %s %s", e.method, e.path(), params, strings.Join(e.headers, ","), e.status, e.mime, e.failed)
	}
}
