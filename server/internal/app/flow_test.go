package app_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
)

// The reference frontend's flow over REST: log in, get the CARTO token, read
// the group's stores with it, and nothing else.
func TestRESTFlow(t *testing.T) {
	b := startBroker(t)
	session := b.login("user.boston@acme.com", "boston")

	status, tok := b.post("/carto-token", session, "")
	if status != http.StatusOK {
		t.Fatalf("/carto-token: %d %v", status, tok)
	}
	if tok["city"] != "BOSTON" || tok["group"] != "BOSTON" || tok["api_base_url"] != b.simURL {
		t.Fatalf("/carto-token answered %v", tok)
	}
	grants := tok["grants"].([]any)
	if len(grants) != 1 || grants[0].(map[string]any)["source"] != bostonSQL {
		t.Fatalf("granted %v, want exactly %q", grants, bostonSQL)
	}
	carto := tok["token"].(string)

	// The granted query reads Boston's stores, through SQL and Maps.
	status, body := b.query("sql", carto, bostonSQL)
	if got := cities(t, body); status != http.StatusOK || len(got) != 1 || got["BOSTON"] == 0 {
		t.Fatalf("SQL with the granted source: %d, cities %v", status, got)
	}
	status, body = b.query("maps", carto, bostonSQL)
	if status != http.StatusOK || body["nrows"].(float64) < 1 {
		t.Fatalf("Maps with the granted source: %d %v", status, body)
	}
	geojsonURL := body["geojson"].(map[string]any)["url"].([]any)[0].(string)
	status, features := b.get(geojsonURL, carto)
	if status != http.StatusOK {
		t.Fatalf("geojson: %d %v", status, features)
	}
	for _, f := range features["features"].([]any) {
		if city := f.(map[string]any)["properties"].(map[string]any)["city"]; city != "BOSTON" {
			t.Fatalf("geojson holds a store of %v", city)
		}
	}

	// New York's query is refused, and so is a changed query.
	if status, body := b.query("sql", carto, nySQL); status != http.StatusForbidden {
		t.Fatalf("New York's query with Boston's token: %d %v", status, body)
	}
	if status, _ := b.query("maps", carto, strings.Replace(bostonSQL, "'BOSTON'", "'BOSTON' OR 1=1", 1)); status != http.StatusForbidden {
		t.Fatalf("an altered query was not refused: %d", status)
	}

	// New York's token is Maps-only: the SQL API refuses it.
	nySession := b.login("user.ny@acme.com", "ny")
	_, nyTok := b.post("/carto-token", nySession, "")
	if nyTok["city"] != "NEW YORK" || strings.Join(toStrings(nyTok["allowed_apis"]), ",") != "maps" {
		t.Fatalf("New York token: %v", nyTok)
	}
	if status, _ := b.query("maps", nyTok["token"].(string), nySQL); status != http.StatusOK {
		t.Fatalf("New York's Maps query: %d", status)
	}
	if status, _ := b.query("sql", nyTok["token"].(string), nySQL); status != http.StatusForbidden {
		t.Fatalf("SQL API with a Maps-only token: %d, want 403", status)
	}

	// Revoked: CARTO refuses the token, and the broker mints a new one.
	status, body = b.post("/v1/revoke", session, `{"carto_token":"`+carto+`"}`)
	if status != http.StatusOK || body["revoked_until"] == "" {
		t.Fatalf("revoke: %d %v", status, body)
	}
	if status, _ := b.query("sql", carto, bostonSQL); status != http.StatusUnauthorized {
		t.Fatalf("revoked token still reads: %d", status)
	}
	_, again := b.post("/v1/carto-token", session, "{}")
	if again["token"] == carto || again["token"] == "" {
		t.Fatalf("after revocation the broker issued %v", again["token"])
	}
	b.post("/login", "", `{"username":"user.boston@acme.com","password":"wrong-pw-xyz"}`)

	// The log has a line per call, and none of the secrets it handled.
	logs := b.logs.String()
	if !strings.Contains(logs, "IssueCartoToken") || !strings.Contains(logs, "Login") {
		t.Fatalf("calls were not logged:\n%s", logs)
	}
	for name, secret := range map[string]string{
		"session token": session, "CARTO token": carto, "new CARTO token": again["token"].(string),
		"JWT secret": jwtSecret, "CARTO client secret": brokertest.CartoClientSecret, "password": "wrong-pw-xyz",
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
}

// The same flow over gRPC.
func TestGRPCFlow(t *testing.T) {
	b := startBroker(t)
	login, err := b.grpc.Login(context.Background(), &tokenbrokerv1.LoginRequest{Username: "user.boston@acme.com", Password: "boston"})
	if err != nil {
		t.Fatal(err)
	}
	if login.GetGroup() != "BOSTON" || login.GetExpiresAt().AsTime().Before(time.Now().Add(59*time.Minute)) {
		t.Fatalf("login: %v", login)
	}
	ctx := withBearer(login.GetToken())
	tok, err := b.grpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.GetCity() != "BOSTON" || tok.GetGrants()[0].GetSource() != bostonSQL || tok.GetExpiresAt().AsTime().Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("issued %v", tok)
	}
	if status, body := b.query("sql", tok.GetToken(), bostonSQL); status != http.StatusOK || len(cities(t, body)) != 1 {
		t.Fatalf("granted query: %d", status)
	}
	if status, _ := b.query("sql", tok.GetToken(), nySQL); status != http.StatusForbidden {
		t.Fatalf("New York's query: %d", status)
	}
	same, err := b.grpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{Group: "BOSTON"})
	if err != nil || same.GetToken() != tok.GetToken() {
		t.Fatalf("second issue: %v, %v; want the cached token", same.GetToken(), err)
	}
	if _, err := b.grpc.RevokeToken(ctx, &tokenbrokerv1.RevokeTokenRequest{Target: &tokenbrokerv1.RevokeTokenRequest_CartoToken{CartoToken: tok.GetToken()}}); err != nil {
		t.Fatal(err)
	}
	if status, _ := b.query("sql", tok.GetToken(), bostonSQL); status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", status)
	}
	next, err := b.grpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{})
	if err != nil || next.GetToken() == tok.GetToken() {
		t.Fatalf("after revoke: %v, %v", next.GetToken(), err)
	}
	if _, err := b.grpc.RevokeToken(ctx, &tokenbrokerv1.RevokeTokenRequest{Target: &tokenbrokerv1.RevokeTokenRequest_Session{Session: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.grpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked session: %v, want UNAUTHENTICATED", err)
	}
}

// 50 concurrent callers of one group cause one OAuth request and one token
// creation; another group then adds exactly one creation.
func TestConcurrentIssueMintsOnce(t *testing.T) {
	b := startBroker(t)
	b.sim.SetFaults(cartosim.Faults{Latency: 50 * time.Millisecond})
	sessions := []string{b.login("user.boston@acme.com", "boston"), b.login("user2.boston@acme.com", "boston")}
	var wg sync.WaitGroup
	tokens := make([]string, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Go(func() {
			if i%2 == 0 { // half over gRPC, half over REST
				r, err := b.grpc.IssueCartoToken(withBearer(sessions[i%2]), &tokenbrokerv1.IssueCartoTokenRequest{})
				tokens[i], errs[i] = r.GetToken(), err
				return
			}
			req, _ := http.NewRequest(http.MethodPost, b.rest+"/carto-token", nil)
			req.Header.Set("Authorization", "Bearer "+sessions[i%2])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			body := decode(t, resp)
			tokens[i], _ = body["token"].(string)
		})
	}
	wg.Wait()
	for i := range 50 {
		if errs[i] != nil || tokens[i] == "" || tokens[i] != tokens[0] {
			t.Fatalf("caller %d: %q, %v (caller 0: %q)", i, tokens[i], errs[i], tokens[0])
		}
	}
	s := b.sim.Stats()
	t.Logf("50 concurrent issues: %d OAuth requests, %d token creations", s.OAuthRequests, s.TokensCreated)
	if s.OAuthRequests != 1 || s.TokensCreated != 1 {
		t.Fatalf("stats %+v: want 1 OAuth request and 1 creation", s)
	}
	ny := b.login("user.ny@acme.com", "ny")
	if _, err := b.grpc.IssueCartoToken(withBearer(ny), &tokenbrokerv1.IssueCartoTokenRequest{}); err != nil {
		t.Fatal(err)
	}
	if s := b.sim.Stats(); s.TokensCreated != 2 || s.OAuthRequests != 1 {
		t.Fatalf("after New York: %+v, want 2 creations, 1 OAuth request", s)
	}
}

func TestSessionRevocation(t *testing.T) {
	b := startBroker(t)
	s1 := b.login("user.boston@acme.com", "boston")
	s2 := b.login("user.boston@acme.com", "boston")
	if status, body := b.post("/v1/revoke", s1, `{"session":true}`); status != http.StatusOK {
		t.Fatalf("logout: %d %v", status, body)
	}
	resp := b.do(http.MethodPost, "/carto-token", s1, "", nil)
	body := decode(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || body["code"].(float64) != float64(codes.Unauthenticated) || body["message"] == "" {
		t.Fatalf("revoked session over REST: %d %v", resp.StatusCode, body)
	}
	if _, err := b.grpc.IssueCartoToken(withBearer(s1), &tokenbrokerv1.IssueCartoTokenRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked session over gRPC: %v", err)
	}
	if status, _ := b.post("/v1/revoke", s1, `{"session":true}`); status != http.StatusUnauthorized {
		t.Fatalf("a revoked session revoked again: %d", status)
	}
	// Another session of the same user is untouched.
	if status, _ := b.post("/carto-token", s2, ""); status != http.StatusOK {
		t.Fatalf("the user's other session: %d", status)
	}
}

// A Boston user cannot revoke, or learn anything about, New York's token.
func TestCrossGroupRevokeChangesNothing(t *testing.T) {
	b := startBroker(t)
	boston := b.login("user.boston@acme.com", "boston")
	ny := b.login("user.ny@acme.com", "ny")
	_, nyTok := b.post("/carto-token", ny, "")
	nyCarto := nyTok["token"].(string)

	code, body := b.post("/v1/revoke", boston, `{"carto_token":"`+nyCarto+`"}`)
	_, unknownBody := b.post("/v1/revoke", boston, `{"carto_token":"no-such-token"}`)
	if code != http.StatusNotFound || body["message"] != unknownBody["message"] {
		t.Fatalf("cross-group revoke: %d %v (unknown token: %v)", code, body, unknownBody)
	}
	_, err := b.grpc.RevokeToken(withBearer(boston), &tokenbrokerv1.RevokeTokenRequest{Target: &tokenbrokerv1.RevokeTokenRequest_CartoToken{CartoToken: nyCarto}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("cross-group revoke over gRPC: %v", err)
	}
	if s := b.sim.Stats(); s.TokensDeleted != 0 {
		t.Fatalf("%d tokens deleted at CARTO", s.TokensDeleted)
	}
	if st, _ := b.query("maps", nyCarto, nySQL); st != http.StatusOK {
		t.Fatalf("New York's token no longer works: %d", st)
	}
	if _, again := b.post("/carto-token", ny, ""); again["token"] != nyCarto {
		t.Fatal("New York's cached token changed")
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
