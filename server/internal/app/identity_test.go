package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
)

// policies is the groups: section every identity test uses.
const policies = `groups:
  "*":
    grants: [{connection: carto_dw, source: "SELECT * FROM ` + "`carto-demo-data`" + `.demo_tables.retail_stores WHERE city = {{group}}"}]
    allowed_apis: [maps, sql]
`

// The company's own IdP: its tokens are accepted, the group comes from a
// configured claim, a logout revokes them, and its key rotation is picked
// up without a restart.
func TestCompanyIdentityProvider(t *testing.T) {
	idp := idptest.New(t, "RS256")
	b := startBroker(t, brokertest.Config(policies+`
identity_providers:
  - name: acme-sso
    issuer: "`+idp.URL()+`"
    audience: tokenbroker-api
    algorithms: [RS256]
    group_claim: realm_access.roles
    group_match: "^carto-(.+)$"
`))
	claims := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": idp.URL(), "aud": "tokenbroker-api", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
			"iat": time.Now().Unix(), "jti": "idp-1",
			"realm_access": map[string]any{"roles": []string{"offline_access", "carto-BOSTON"}},
		}
	}
	tok := idp.Sign(t, claims())
	code, body := b.post("/carto-token", tok, "")
	if code != http.StatusOK || body["city"] != "BOSTON" {
		t.Fatalf("IdP token: %d %v", code, body)
	}
	if st, rows := b.query("sql", body["token"].(string), bostonSQL); st != http.StatusOK || len(cities(t, rows)) != 1 {
		t.Fatalf("its CARTO token does not read Boston: %d", st)
	}

	// A role with no CARTO group is known but allowed nothing. (Forged and
	// misdirected IdP tokens: attack_jwt_test.go.)
	noGroup := claims()
	noGroup["realm_access"] = map[string]any{"roles": []string{"offline_access"}}
	if code, body := b.post("/carto-token", idp.Sign(t, noGroup), ""); code != http.StatusForbidden {
		t.Errorf("no group: %d %v, want 403", code, body)
	}

	// Rotation: the IdP signs with a new key; accepted without restart.
	idp.Rotate(t)
	rotated := claims()
	rotated["jti"] = "idp-2"
	if code, body := b.post("/carto-token", idp.Sign(t, rotated), ""); code != http.StatusOK {
		t.Fatalf("after the IdP rotated its key: %d %v", code, body)
	}

	// Logout with an IdP token: that token is refused from then on.
	if code, _ := b.post("/v1/revoke", tok, `{"session":true}`); code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := b.post("/carto-token", tok, ""); code != http.StatusUnauthorized {
		t.Fatalf("revoked IdP token: %d", code)
	}
}

// Sessions signed with rotating Ed25519 keys, whose public keys are
// published, so another service verifies a session without the broker.
func TestAsymmetricSessionsAndJWKS(t *testing.T) {
	b := startBroker(t, brokertest.Env(map[string]string{"SESSION_SIGNING_ALG": "EdDSA"}))
	session := b.login("user.boston@acme.com", "boston")
	resp := b.do(http.MethodGet, "/.well-known/jwks.json", "", "", nil)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(raw), `"d"`) {
		t.Fatalf("JWKS: %d %s", resp.StatusCode, raw)
	}
	var set struct {
		Keys []struct{ Kid, Kty, Crv, Alg, X string }
	}
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS %s: %v", raw, err)
	}
	// Verify the session the way another ACME service would.
	parsed, err := jwt.Parse(session, func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tok.Header["kid"] && k.Kty == "OKP" && k.Crv == "Ed25519" {
				x, err := jwtB64(k.X)
				return ed25519Key(x), err
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("tokenbroker"), jwt.WithIssuer("tokenbroker"))
	if err != nil || !parsed.Valid {
		t.Fatalf("a session does not verify with the published keys: %v", err)
	}
	if code, _ := b.post("/carto-token", session, ""); code != http.StatusOK {
		t.Fatalf("EdDSA session refused by the broker: %d", code)
	}
	// An HS256 session made with JWT_SECRET: TestAttackKeyConfusion.
}

// Internal services over mTLS: a registered service obtains tokens for the
// groups its configuration lists, and nothing else.
func TestServicesOverMutualTLS(t *testing.T) {
	pki := newPKI(t)
	b := startBroker(t, brokertest.Config(policies+`
users:
  - {username: user.boston@acme.com, password_hash: "`+bostonHash+`", group: BOSTON}
services:
  - name: reporting
    identity: spiffe://acme.com/reporting
    groups: [BOSTON]
`), brokertest.Env(map[string]string{"TLS_CERT_FILE": pki.serverCert, "TLS_KEY_FILE": pki.serverKey, "TLS_CLIENT_CA_FILE": pki.caFile}))

	svc := b.grpcWithCert(pki.client(t, "spiffe://acme.com/reporting"))
	stranger := b.grpcWithCert(pki.client(t, "spiffe://acme.com/unknown"))
	ctx := context.Background()
	tests := []struct {
		name   string
		client tokenbrokerv1.TokenBrokerClient
		group  string
		want   codes.Code
	}{
		{"allowed group", svc, "BOSTON", codes.OK},
		{"group not allowed", svc, "NEW YORK", codes.PermissionDenied},
		{"no group", svc, "", codes.InvalidArgument},
		{"unregistered certificate", stranger, "BOSTON", codes.Unauthenticated},
		{"no certificate, no token", b.grpc, "BOSTON", codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.client.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{Group: tt.group})
			if status.Code(err) != tt.want || (err == nil && r.GetCity() != "BOSTON") {
				t.Fatalf("%v %v, want %v", r.GetCity(), err, tt.want)
			}
		})
	}
	// The same over REST (HTTPS with the client certificate).
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.roots, Certificates: []tls.Certificate{pki.client(t, "spiffe://acme.com/reporting")}}}}
	for group, want := range map[string]int{"BOSTON": 200, "NEW YORK": 403} {
		resp, err := hc.Post(b.rest+"/v1/carto-token", "application/json", strings.NewReader(`{"group":"`+group+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("REST service asking for %s: %d, want %d", group, resp.StatusCode, want)
		}
	}
	// A user's session over TLS still works, and still cannot choose a group.
	session := b.login("user.boston@acme.com", "boston")
	if code, _ := b.post("/v1/carto-token", session, `{"group":"NEW YORK"}`); code != http.StatusForbidden {
		t.Fatalf("a session choosing another group over TLS: %d", code)
	}
}

// Admins may list the tokens held (masked) and revoke a whole group's;
// nobody else may.
func TestAdminRole(t *testing.T) {
	b := startBroker(t, brokertest.Config(policies+`
users:
  - {username: admin@acme.com, password_hash: "`+bostonHash+`", group: BOSTON, admin: true}
  - {username: user.boston@acme.com, password_hash: "`+bostonHash+`", group: BOSTON}
  - {username: user.ny@acme.com, password_hash: "`+nyHash+`", group: NEW YORK}
`))
	admin, user, ny := b.login("admin@acme.com", "boston"), b.login("user.boston@acme.com", "boston"), b.login("user.ny@acme.com", "ny")
	_, bos := b.post("/carto-token", user, "")
	_, nyt := b.post("/carto-token", ny, "")

	resp := b.do(http.MethodGet, "/v1/tokens", user, "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a user listing tokens: %d", resp.StatusCode)
	}
	resp = b.do(http.MethodGet, "/v1/tokens", admin, "", nil)
	list := decode(t, resp)
	tokens := list["tokens"].([]any)
	raw, _ := json.Marshal(list)
	if resp.StatusCode != http.StatusOK || len(tokens) != 2 || strings.Contains(string(raw), bos["token"].(string)) || strings.Contains(string(raw), nyt["token"].(string)) {
		t.Fatalf("admin list: %d %s", resp.StatusCode, raw)
	}
	var groups []string
	for _, tk := range tokens {
		groups = append(groups, tk.(map[string]any)["group"].(string))
	}
	sort.Strings(groups)
	if strings.Join(groups, ",") != "BOSTON,NEW YORK" {
		t.Fatalf("listed groups %v", groups)
	}

	if code, _ := b.post("/v1/revoke", user, `{"group":"NEW YORK"}`); code != http.StatusForbidden {
		t.Fatalf("a user revoking a group: %d", code)
	}
	code, body := b.post("/v1/revoke", admin, `{"group":"NEW YORK"}`)
	if code != http.StatusOK || body["revoked_count"].(float64) != 1 {
		t.Fatalf("admin revoking New York: %d %v", code, body)
	}
	if st, _ := b.query("maps", nyt["token"].(string), nySQL); st != http.StatusUnauthorized {
		t.Fatalf("New York's revoked token still reads: %d", st)
	}
	if st, _ := b.query("maps", bos["token"].(string), bostonSQL); st != http.StatusOK {
		t.Fatalf("Boston's token was touched: %d", st)
	}
}

// 20 wrong passwords lock the account: the right password is refused until
// the lockout ends; other accounts are untouched. Unknown-user and
// wrong-password logins take the same time (printed, not asserted).
func TestLoginLockoutAndTiming(t *testing.T) {
	// Failures are counted in fixed windows, here of a day from UTC
	// midnight: a run that straddles one starts again in the new window.
	const window = 24 * time.Hour
	b := startBroker(t, brokertest.Env(map[string]string{"LOGIN_MAX_ADDR_FAILURES": "0", "LOGIN_LOCKOUT_WINDOW": window.String()}))
	wrong := `{"username":"user.boston@acme.com","password":"wrong"}`
	for try := 1; ; try++ {
		start := time.Now()
		for i := range 20 {
			if code, _ := b.post("/login", "", wrong); code != http.StatusUnauthorized && try == 1 {
				t.Fatalf("attempt %d: %d", i+1, code)
			}
		}
		resp := b.do(http.MethodPost, "/login", "", `{"username":"user.boston@acme.com","password":"boston"}`, nil)
		body := decode(t, resp)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "" && strings.Contains(body["message"].(string), "too many failed logins") {
			break
		}
		if try == 1 && windowTurned(start, window) {
			continue // the window turned during the attempts
		}
		t.Fatalf("right password while locked out: %d %v Retry-After=%q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if _, err := b.grpc.Login(context.Background(), &tokenbrokerv1.LoginRequest{Username: "user.boston@acme.com", Password: "boston"}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over gRPC while locked out: %v", err)
	}
	if code, _ := b.post("/login", "", `{"username":"user.ny@acme.com","password":"ny"}`); code != http.StatusOK {
		t.Fatalf("another account: %d", code)
	}

	measure := func(user string) time.Duration {
		var ds []time.Duration
		for range 7 {
			start := time.Now()
			b.post("/login", "", `{"username":"`+user+`","password":"nope"}`)
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	known, unknown := measure("user.ny@acme.com"), measure("nobody@acme.com")
	t.Logf("median login time: wrong password %v, unknown user %v (ratio %.2f; race detector on)", known.Round(time.Millisecond), unknown.Round(time.Millisecond), float64(unknown)/float64(known))

	logs := b.logs.String()
	for _, want := range []string{`"action":"login","outcome":"failure"`, `"action":"login","outcome":"denied","code":"ResourceExhausted"`, `"action":"login","outcome":"success"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
	if strings.Contains(logs, "wrong") || strings.Contains(logs, `"password"`) {
		t.Fatal("a password reached the log")
	}
}

// The audit log has one event per issuance (hit or mint) and revocation,
// with fingerprints, never tokens.
func TestAuditEvents(t *testing.T) {
	b := startBroker(t)
	session := b.login("user.boston@acme.com", "boston")
	_, first := b.post("/carto-token", session, "")
	b.post("/carto-token", session, "")
	b.post("/v1/revoke", session, `{"carto_token":"`+first["token"].(string)+`"}`)
	var events []map[string]any
	for _, line := range strings.Split(b.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "audit" {
			events = append(events, m)
		}
	}
	var got []string
	for _, e := range events {
		got = append(got, e["action"].(string)+"/"+e["outcome"].(string)+"/"+str(e["detail"]))
		if e["addr"] == nil || (e["action"] != "login" && e["kind"] != "user") {
			t.Errorf("event lacks who or where: %v", e)
		}
	}
	want := "login/success/,issue/success/mint,issue/success/hit,revoke/success/carto_token"
	if strings.Join(got, ",") != want {
		t.Fatalf("audit events %v, want %s", got, want)
	}
	if strings.Contains(b.logs.String(), first["token"].(string)) || strings.Contains(b.logs.String(), session) {
		t.Fatal("a token reached the log")
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// grpcWithCert is a gRPC client presenting a client certificate.
func (b *broker) grpcWithCert(cert tls.Certificate) tokenbrokerv1.TokenBrokerClient {
	b.t.Helper()
	conn, err := grpc.NewClient(b.app.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: b.roots, Certificates: []tls.Certificate{cert}})))
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { conn.Close() })
	return tokenbrokerv1.NewTokenBrokerClient(conn)
}

// pki is a test CA with a server certificate for 127.0.0.1.
type pki struct {
	ca                            *x509.Certificate
	caKey                         *ecdsa.PrivateKey
	caFile, serverCert, serverKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{}
	p.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", der)
	srv := p.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "broker"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	p.serverCert = writePEM(t, dir, "server.pem", "CERTIFICATE", srv.Certificate[0])
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srv.PrivateKey)
	p.serverKey = writePEM(t, dir, "server-key.pem", "PRIVATE KEY", keyDER)
	return p
}

// client issues a client certificate with the given URI SAN.
func (p *pki) client(t *testing.T, uri string) tls.Certificate {
	u, _ := url.Parse(uri)
	return p.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "svc"}, URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

func (p *pki) issue(t *testing.T, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func jwtB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func ed25519Key(b []byte) ed25519.PublicKey { return ed25519.PublicKey(b) }
