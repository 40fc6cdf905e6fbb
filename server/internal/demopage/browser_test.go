package demopage_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/browsertest"
)

var screenshots = flag.String("screenshots", "", "directory for the page's screenshots (default: a temporary one); docs/ holds the README's")

// browser starts a headless Chromium with nothing reaching beyond loopback,
// and watches its console.
func browser(t *testing.T) (context.Context, *browsertest.Errors) {
	ctx := browsertest.Start(t, 90*time.Second, chromedp.WindowSize(1100, 1000))
	// Refused CARTO calls (401, 403) are the point of the page and are
	// logged as network errors; a script error, a CSP violation or any
	// other error must not happen.
	errs := browsertest.WatchConsole(t, ctx, func(m chromedp.ConsoleMessage) bool {
		return m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network")
	})
	return ctx, errs
}

func screenshotDir(t *testing.T) string {
	if *screenshots != "" {
		return *screenshots
	}
	return t.TempDir()
}

// waitText waits until the element's text matches re.
func waitText(sel string, re *regexp.Regexp) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		var last string
		for {
			txt, err := chromedp.TextContent(chromedp.CSS(sel), chromedp.NodeReady)(ctx, t)
			if err != nil {
				return chromedp.Void{}, err
			}
			if re.MatchString(txt) {
				return chromedp.Void{}, nil
			}
			last = txt
			select {
			case <-ctx.Done():
				return chromedp.Void{}, fmt.Errorf("%s never matched %s; last text %q: %w", sel, re, last, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// drawn is what the map and the list show.
type drawn struct {
	PointCities []string `json:"pointCities"`
	ListCities  []string `json:"listCities"`
	Group       string   `json:"group"`
	Token       string   `json:"token"`
	APIs        string   `json:"apis"`
	Grant       string   `json:"grant"`
}

const readDrawn = `({
	pointCities: [...document.querySelectorAll('#points g.store')].map(g => g.dataset.city),
	listCities: [...document.querySelectorAll('#store-list li')].map(li => li.dataset.city),
	group: document.getElementById('group').textContent,
	token: document.getElementById('token-value').textContent,
	apis: document.getElementById('apis').textContent,
	grant: document.getElementById('grant').textContent,
})`

// read reads what the page shows.
func read(t *testing.T, ctx context.Context) drawn {
	t.Helper()
	d, err := chromedp.Run(ctx, chromedp.Evaluate[drawn](readDrawn))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// login logs in as user and waits for the page to settle: the stores of
// the granted query drawn, and the named query answered with its default.
func login(user string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.Click(chromedp.CSS(`button[data-username="`+user+`"]`)),
		chromedp.Click(chromedp.CSS("#login-button")),
		chromedp.WaitVisible(chromedp.CSS("#points g.store")),
		chromedp.WaitReady(chromedp.CSS(`#named[data-state="done"]`)),
	)
}

// The demo's my-stores query: its storetype parameter's allowed values, and
// its default.
var (
	storeTypes       = []string{"Supermarket", "Convenience Store", "Department Store", "Drugstore", "Discount Store"}
	defaultStoreType = "Supermarket"
)

// choose picks value in the select sel as a user does: the value, then a
// change event.
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	s, _ := json.Marshal(sel)
	v, _ := json.Marshal(value)
	return chromedp.Steps(
		chromedp.WaitEnabled(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`((sel, value) => {
	const s = document.querySelector(sel);
	if (![...s.options].some(o => o.value === value)) throw new Error('no option ' + value);
	s.value = value;
	s.dispatchEvent(new Event('change', {bubbles: true}));
})(%s, %s)`, s, v)),
	)
}

// namedAnswered waits, on the page's mutations, until the named query's
// panel shows storetype's answer; it fails at once if the page shows an
// error instead.
func namedAnswered(storetype string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		got, err := chromedp.PollFunction[string](`(want) => {
	const p = document.getElementById('named');
	if (p.dataset.state === 'error') return 'error: ' + document.getElementById('error').textContent;
	return p.dataset.state === 'done' && p.dataset.shown === want ? 'done' : false;
}`, chromedp.WithPollingMutation(), chromedp.WithPollingArgs(storetype))(ctx, t)
		if err != nil {
			return chromedp.Void{}, fmt.Errorf("waiting for the named query's %s stores: %w", storetype, err)
		}
		if got != "done" {
			return chromedp.Void{}, fmt.Errorf("the named query with %s: %s", storetype, got)
		}
		return chromedp.Void{}, nil
	}
}

// named is what the named query's panel shows.
type named struct {
	Options  []string `json:"options"`
	Selected string   `json:"selected"`
	Points   []string `json:"points"` // store_id/city/storetype of each point
	List     []string `json:"list"`   // the same of each list item
	Count    string   `json:"count"`
	Bound    string   `json:"bound"`
	Request  string   `json:"request"`
}

const readNamed = `(() => {
	const id = (el) => el.dataset.storeId + '/' + el.dataset.city + '/' + el.dataset.storetype;
	const sel = document.getElementById('named-storetype');
	return {
		options: [...sel.options].map(o => o.value),
		selected: sel.value,
		points: [...document.querySelectorAll('#named-points g.store')].map(id),
		list: [...document.querySelectorAll('#named-list li')].map(id),
		count: document.getElementById('named-count').textContent,
		bound: document.getElementById('named-bound').textContent,
		request: document.getElementById('named-request').textContent,
	};
})()`

// storesOfType lists the emulator's stores of city and storetype as
// store_id/city/storetype, sorted: what my-stores must answer.
func storesOfType(b *brokertest.Broker, city, storetype string) []string {
	var out []string
	for _, row := range b.Emulator.Rows() {
		if row["city"] == city && row["storetype"] == storetype {
			out = append(out, fmt.Sprintf("%v/%v/%v", row["store_id"], city, storetype))
		}
	}
	slices.Sort(out)
	return out
}

// requests records the URLs of the requests a page makes, with whether
// each carried a bearer (never the bearer itself), from the browser's
// network events.
type requests struct {
	mu   sync.Mutex
	list []sentRequest
}

type sentRequest struct {
	url    *url.URL
	bearer bool
}

func watchRequests(t *testing.T, ctx context.Context) *requests {
	t.Helper()
	r := &requests{}
	err := chromedp.Listen(ctx, func(ev any) {
		e, ok := ev.(*network.EventRequestWillBeSent)
		if !ok || e.Request == nil {
			return
		}
		u, err := url.Parse(e.Request.URL + e.Request.URLFragment)
		if err != nil {
			u = &url.URL{Opaque: e.Request.URL}
		}
		auth, _ := e.Request.Headers["Authorization"].(string)
		r.mu.Lock()
		r.list = append(r.list, sentRequest{u, strings.HasPrefix(auth, "Bearer ")})
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// since returns the requests made after the first n.
func (r *requests) since(n int) []sentRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list[n:])
}

func (r *requests) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.list)
}

// revocations reads the broker's successful revocations of target from
// /metrics.
func revocations(t *testing.T, b *brokertest.Broker, target string) int {
	t.Helper()
	resp, err := http.Get(b.RESTURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`tokenbroker_revocations_total\{outcome="success",target="` + target + `"\} (\d+)`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// The whole story, as each demo user: log in, see the token, see only the
// group's stores, be refused the other city's query, revoke the token, get
// a new one, log out.
func TestDemoPage(t *testing.T) {
	b := brokertest.Start(t)
	ctx, pageErrs := browser(t)
	sent := watchRequests(t, ctx)
	dir := screenshotDir(t)

	cases := []struct {
		user, group, other, apis, shot string
	}{
		{brokertest.BostonUser, "BOSTON", "NEW YORK", "maps, sql", "demo-page.png"},
		{brokertest.NYUser, "NEW YORK", "BOSTON", "maps", "demo-page-ny.png"},
	}
	for _, tc := range cases {
		t.Run(tc.group, func(t *testing.T) {
			want := b.StoresOf(t, tc.group)
			deletedBefore := b.Emulator.Stats().TokensDeleted
			sessionsBefore := revocations(t, b, "session")
			sentBefore := sent.len()

			err := chromedp.Do(ctx,
				chromedp.Navigate(b.RESTURL+"/"),
				login(tc.user),
				waitText("#status", regexp.MustCompile(strconv.Itoa(want)+" stores of "+tc.group)),
			)
			if err != nil {
				t.Fatal(err)
			}
			got := read(t, ctx)
			if got.Group != tc.group || got.APIs != tc.apis || !strings.Contains(got.Grant, "city = '"+tc.group+"'") || got.Token == "" {
				t.Errorf("token details: group %q, APIs %q, grant %q, token %d chars", got.Group, got.APIs, got.Grant, len(got.Token))
			}
			if len(got.PointCities) != want || len(got.ListCities) != want {
				t.Errorf("%d points and %d list items drawn, want %d of %s", len(got.PointCities), len(got.ListCities), want, tc.group)
			}
			for _, c := range append(got.PointCities, got.ListCities...) {
				if c != tc.group {
					t.Errorf("a store of %q drawn for %s", c, tc.group)
				}
			}

			// The named query: the select is the parameter's allowed values
			// with its default chosen and answered; each store type chosen
			// draws exactly the group's stores of that type (Boston has no
			// Discount Store), the city bound by the broker.
			checkNamed(t, ctx, b, tc.group, defaultStoreType)
			for _, st := range []string{"Drugstore", "Discount Store", "Supermarket"} {
				if err := chromedp.Do(ctx, choose("#named-storetype", st), namedAnswered(st)); err != nil {
					t.Fatal(err)
				}
				checkNamed(t, ctx, b, tc.group, st)
			}
			checkRequests(t, sent.since(sentBefore), []string{defaultStoreType, "Drugstore", "Discount Store", "Supermarket"})

			// The other city's query, with the same token: refused by CARTO.
			err = chromedp.Do(ctx,
				chromedp.Click(chromedp.CSS("#other-city")),
				waitText("#error", regexp.MustCompile(`Refused, as it should be\. CARTO answered `+tc.other+`'s query with HTTP 403`)),
			)
			if err != nil {
				t.Fatal(err)
			}
			after := read(t, ctx)
			if len(after.PointCities) != want {
				t.Errorf("after the refusal %d points drawn, want %d", len(after.PointCities), want)
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tc.shot), png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", filepath.Join(dir, tc.shot))

			// Revoke: deleted at CARTO; the page's next query, through the
			// broker's CARTO gateway (the demo groups' api_base_url), is
			// refused there; a new token reads the stores again.
			err = chromedp.Do(ctx,
				chromedp.Click(chromedp.CSS("#revoke")),
				waitText("#status", regexp.MustCompile(`Token revoked at CARTO\. The same query with it now gets HTTP 401: Unauthorized: the token is not one this broker holds: unknown, revoked or expired`)),
				chromedp.WaitNotPresent(chromedp.CSS("#points g.store")),
				chromedp.Click(chromedp.CSS("#new-token")),
				chromedp.WaitVisible(chromedp.CSS("#points g.store")),
			)
			if err != nil {
				t.Fatal(err)
			}
			fresh := read(t, ctx)
			if n := b.Emulator.Stats().TokensDeleted - deletedBefore; n != 1 {
				t.Errorf("%d tokens deleted at the emulator, want 1", n)
			}
			if fresh.Token == "" || fresh.Token == got.Token || len(fresh.PointCities) != want {
				t.Errorf("after revoking: new token %v, %d points", fresh.Token != got.Token, len(fresh.PointCities))
			}

			// Log out: the session is revoked at the broker.
			err = chromedp.Do(ctx,
				chromedp.Click(chromedp.CSS("#logout")),
				chromedp.WaitVisible(chromedp.CSS("#login-form")),
				chromedp.WaitNotVisible(chromedp.CSS("#token")),
				waitText("#status", regexp.MustCompile(`Logged out`)),
			)
			if err != nil {
				t.Fatal(err)
			}
			if n := revocations(t, b, "session") - sessionsBefore; n != 1 {
				t.Errorf("%d session revocations recorded, want 1", n)
			}
			if err := chromedp.Do(ctx, chromedp.WaitNotVisible(chromedp.CSS("#named"))); err != nil {
				t.Fatal(err)
			}
		})
	}
	pageErrs.Check(t)
}

// checkNamed checks the named query's panel shows exactly group's stores of
// storetype, and says the broker bound the city to the group.
func checkNamed(t *testing.T, ctx context.Context, b *brokertest.Broker, group, storetype string) {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[named](readNamed))
	if err != nil {
		t.Fatal(err)
	}
	want := storesOfType(b, group, storetype)
	slices.Sort(got.Points)
	slices.Sort(got.List)
	if !slices.Equal(got.Points, want) || !slices.Equal(got.List, want) {
		t.Errorf("%s: points %v, list %v, want %v", storetype, got.Points, got.List, want)
	}
	if !slices.Equal(got.Options, storeTypes) || got.Selected != storetype {
		t.Errorf("select: options %q, %q chosen, want %q of %q", got.Options, got.Selected, storetype, storeTypes)
	}
	if !strings.HasPrefix(got.Count, strconv.Itoa(len(want))+" "+storetype+" store") {
		t.Errorf("count %q, want %d %s stores", got.Count, len(want), storetype)
	}
	if got.Bound != "city = your group, "+group+" (not sent by the page)" {
		t.Errorf("bound parameters shown as %q", got.Bound)
	}
	wantReq := "GET /v1/queries/my-stores/geojson?" + url.Values{"storetype": {storetype}}.Encode()
	if got.Request != wantReq {
		t.Errorf("request shown as %q, want %q", got.Request, wantReq)
	}
	t.Logf("%s, %s: %d stores drawn and listed, as in the emulator's table", group, storetype, len(want))
}

// checkRequests checks that no request the page made carries a city
// parameter, that the queries were listed and my-stores run with the
// session once for each store type of storetypes, in that order, and with
// nothing else.
func checkRequests(t *testing.T, sent []sentRequest, storetypes []string) {
	t.Helper()
	var listed int
	var ran []string
	for _, r := range sent {
		if r.url.Query().Has("city") {
			t.Errorf("the page sent a city: %s", r.url.Redacted())
		}
		switch r.url.Path {
		case "/v1/queries":
			listed++
			if !r.bearer {
				t.Errorf("%s without the session", r.url.Path)
			}
		case "/v1/queries/my-stores/geojson":
			q := r.url.Query()
			ran = append(ran, q.Get("storetype"))
			if len(q) != 1 || !r.bearer {
				t.Errorf("my-stores run as %s, bearer %v: want storetype only, with the session", r.url.RawQuery, r.bearer)
			}
		}
	}
	if listed != 1 || !slices.Equal(ran, storetypes) {
		t.Errorf("queries listed %d times, my-stores run with %q; want once, and %q", listed, ran, storetypes)
	}
	t.Logf("%d requests, none with a city; my-stores run %d times with storetype only", len(sent), len(ran))
}

// The broker's refusal of a named query shows in the page's error area,
// and the panel draws nothing: a store type outside the allowed list (put
// in the select behind the page's back) is answered 400 naming the
// parameter.
func TestDemoPageNamedQueryRefused(t *testing.T) {
	b := brokertest.Start(t)
	ctx, pageErrs := browser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(b.RESTURL+"/"),
		login(brokertest.BostonUser),
		namedAnswered(defaultStoreType),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('named-storetype').add(new Option('Hypermarket', 'Hypermarket'))`),
		choose("#named-storetype", "Hypermarket"),
		waitText("#error", regexp.MustCompile(`^The named query my-stores failed \(HTTP 400\): parameter storetype must be one of: Supermarket, `)),
		chromedp.WaitReady(chromedp.CSS(`#named[data-state="error"]`)),
		chromedp.WaitNotPresent(chromedp.CSS("#named-points g.store")),
		waitText("#named-count", regexp.MustCompile(`^No answer\.$`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	pageErrs.Check(t)
}

// A wrong password is refused on the page, and the form stays.
func TestDemoPageWrongPassword(t *testing.T) {
	b := brokertest.Start(t)
	ctx, pageErrs := browser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(b.RESTURL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#username"), brokertest.BostonUser),
		chromedp.SendKeys(chromedp.CSS("#password"), "not-the-password"),
		chromedp.Click(chromedp.CSS("#login-button")),
		waitText("#error", regexp.MustCompile(`Login failed \(HTTP 401\)`)),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.WaitNotVisible(chromedp.CSS("#token")),
	)
	if err != nil {
		t.Fatal(err)
	}
	pageErrs.Check(t)
}

// At phone width the page has no sideways scrolling, and every control is
// labelled.
func TestDemoPagePhoneWidthAndLabels(t *testing.T) {
	b := brokertest.Start(t)
	ctx, pageErrs := browser(t)
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(b.RESTURL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
	)
	if err != nil {
		t.Fatal(err)
	}
	unlabelled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](unlabelledJS))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, login(brokertest.NYUser)); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](overflowJS))
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range overflow {
		t.Errorf("wider than the phone: %s", o)
	}
	for _, u := range unlabelled {
		t.Errorf("no accessible name: %s", u)
	}
	dir := screenshotDir(t)
	if err := os.WriteFile(filepath.Join(dir, "demo-page-phone.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	pageErrs.Check(t)
}

// overflowJS lists the visible elements that stick out of the viewport.
const overflowJS = `(() => {
	const w = document.documentElement.clientWidth, out = [];
	if (document.documentElement.scrollWidth > w) out.push('document: ' + document.documentElement.scrollWidth + ' > ' + w);
	for (const el of document.querySelectorAll('body *')) {
		const r = el.getBoundingClientRect();
		if (r.width > 0 && r.right > w + 1) out.push(el.tagName + (el.id ? '#' + el.id : '') + ': right edge ' + Math.round(r.right));
	}
	return out;
})()`

// unlabelledJS lists the inputs and selects without a label, the buttons without text,
// and an SVG map without a name.
const unlabelledJS = `(() => {
	const out = [];
	for (const i of document.querySelectorAll('input, select')) if (!i.labels || i.labels.length === 0) out.push(i.tagName.toLowerCase() + '#' + i.id);
	for (const b of document.querySelectorAll('button')) if (!b.textContent.trim() && !b.id.match(/other-city/)) out.push('button#' + b.id);
	const svg = document.querySelector('svg#map');
	if (!svg || svg.getAttribute('role') !== 'img' || !svg.getAttribute('aria-labelledby')) out.push('svg#map');
	return out;
})()`
