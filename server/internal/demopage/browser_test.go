package demopage_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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

func login(user string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.Click(chromedp.CSS(`button[data-username="`+user+`"]`)),
		chromedp.Click(chromedp.CSS("#login-button")),
		chromedp.WaitVisible(chromedp.CSS("#points g.store")),
	)
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
		})
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

// unlabelledJS lists the inputs without a label, the buttons without text,
// and an SVG map without a name.
const unlabelledJS = `(() => {
	const out = [];
	for (const i of document.querySelectorAll('input')) if (!i.labels || i.labels.length === 0) out.push('input#' + i.id);
	for (const b of document.querySelectorAll('button')) if (!b.textContent.trim() && !b.id.match(/other-city/)) out.push('button#' + b.id);
	const svg = document.querySelector('svg#map');
	if (!svg || svg.getAttribute('role') !== 'img' || !svg.getAttribute('aria-labelledby')) out.push('svg#map');
	return out;
})()`
