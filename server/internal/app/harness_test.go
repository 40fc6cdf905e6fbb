package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
)

// jwtSecret is the configured broker's JWT_SECRET: tests sign their own
// session tokens with it.
const jwtSecret = brokertest.JWTSecret

const (
	// bcrypt hashes (cost 10) of "boston", "ny" and "obrien".
	bostonHash = "$2a$10$qN8jcbw5Vh/n23PA2JXl1OsgZNkQer1PUXFZZh75heal85AzWBkye"
	nyHash     = "$2a$10$KSc9nNFavwVbb83BMH9Ri.yvxVEvIl2ysDu0KsVYvbQmU4JU6NZAm"
)

const bostonSQL = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'BOSTON'"
const nySQL = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'NEW YORK'"

// testConfig is a TOKENBROKER_CONFIG like a customer's: Boston may use Maps
// and SQL, every other group gets the reference policy (Maps only).
const testConfig = `
users:
  - {username: user.boston@acme.com, password_hash: "` + bostonHash + `", group: BOSTON}
  - {username: user2.boston@acme.com, password_hash: "` + bostonHash + `", group: BOSTON}
  - {username: user.ny@acme.com, password_hash: "` + nyHash + `", group: NEW YORK}
groups:
  BOSTON:
    grants:
      - connection: carto_dw
        source: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = {{group}}"
    allowed_apis: [maps, sql]
  "*":
    grants:
      - connection: carto_dw
        source: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = {{group}}"
    allowed_apis: [maps]
`

// broker is a running TokenBroker (brokertest's), with the calls these
// tests make to it.
type broker struct {
	t      *testing.T
	app    *app.App
	sim    *cartosim.Sim
	simURL string
	// gateway is the broker's CARTO gateway ("" when it serves none).
	gateway string
	rest    string // http://host:port
	grpc    tokenbrokerv1.TokenBrokerClient
	conn    *grpc.ClientConn
	logs    *logtest.Buffer
	stop    func() error
	// http is the REST client; with TLS it trusts the test CA (roots).
	http  *http.Client
	roots *x509.CertPool
}

// startBroker starts a broker wired by app.New from a real configuration,
// against a CARTO emulator over loopback HTTP: testConfig, unless opts say
// otherwise (brokertest.Config, or brokertest.Demo for demo mode).
func startBroker(t *testing.T, opts ...brokertest.Option) *broker {
	t.Helper()
	bt := brokertest.Start(t, append([]brokertest.Option{brokertest.Config(testConfig)}, opts...)...)
	creds := insecure.NewCredentials()
	if bt.Roots != nil {
		creds = credentials.NewTLS(&tls.Config{RootCAs: bt.Roots})
	}
	conn, err := grpc.NewClient(bt.GRPCAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, app: bt.App, sim: bt.Emulator, simURL: bt.EmulatorURL, gateway: bt.GatewayURL, rest: bt.RESTURL,
		grpc: tokenbrokerv1.NewTokenBrokerClient(conn), conn: conn, logs: bt.Logs, http: bt.HTTP, roots: bt.Roots}
	b.stop = func() error {
		defer conn.Close() // after the drain, so in-flight calls can finish
		return bt.Stop()
	}
	t.Cleanup(func() { _ = b.stop() }) // brokertest reports Run's error
	return b
}

// login signs in over REST and returns the session token.
func (b *broker) login(user, password string) string {
	b.t.Helper()
	status, body := b.post("/login", "", `{"username":"`+user+`","password":"`+password+`"}`)
	if status != http.StatusOK {
		b.t.Fatalf("login %s: %d %v", user, status, body)
	}
	return body["token"].(string)
}

// post sends a REST request and decodes the JSON answer.
func (b *broker) post(path, bearer, body string) (int, map[string]any) {
	b.t.Helper()
	resp := b.do(http.MethodPost, path, bearer, body, nil)
	return resp.StatusCode, decode(b.t, resp)
}

func (b *broker) do(method, path, bearer, body string, hdr http.Header) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.rest+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("response %d is not JSON: %q", resp.StatusCode, raw)
		}
	}
	return m
}

// withBearer is a gRPC call context carrying a session token.
func withBearer(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// query calls one of the emulator's data APIs ("sql" or "maps") with an API
// access token, as a frontend would, and returns the status and JSON.
func (b *broker) query(api, token, sql string) (int, map[string]any) {
	b.t.Helper()
	u := b.simURL + "/v3/" + api + "/carto_dw/query?" + url.Values{"q": {sql}}.Encode()
	return b.get(u, token)
}

func (b *broker) get(u, token string) (int, map[string]any) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, decode(b.t, resp)
}

// cities lists the distinct city of each row of a SQL answer.
func cities(t *testing.T, body map[string]any) map[string]int {
	t.Helper()
	rows, ok := body["rows"].([]any)
	if !ok {
		t.Fatalf("no rows in %v", body)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.(map[string]any)["city"].(string)]++
	}
	return out
}

// windowTurned reports whether the fixed window of the given length that
// held start (the stores' counters count in windows from the zero time) has
// ended: counts made before and after are in different windows.
func windowTurned(start time.Time, window time.Duration) bool {
	return !start.Truncate(window).Equal(time.Now().Truncate(window))
}
