package app_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// Finding 3: one BOSTON user looping IssueCartoToken then
// RevokeToken{carto_token} spent MAX_MINTS_PER_HOUR in seconds, and every
// other group was refused for the rest of the hour. Now the loop stops at
// BOSTON's own budget (of mints, or of members' revocations), answered 429
// with Retry-After and a message naming the limit, while NEW YORK is still
// served; with CARTO_TOKEN_REVOKERS=admins a member may not revoke at all.
func TestAttackRevokeLoopExhaustsTheDeploymentBudget(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		limit   string // in the refusal's message
		created int64  // tokens created at CARTO for BOSTON by then
	}{
		{"group mint budget", map[string]string{"MAX_MINTS_PER_HOUR": "40", "MAX_MINTS_PER_GROUP_PER_HOUR": "5", "MAX_TOKEN_REVOCATIONS_PER_GROUP_PER_HOUR": "0"},
			"group BOSTON's limit of 5 CARTO token creations per", 5},
		{"members' revocation budget", map[string]string{"MAX_MINTS_PER_HOUR": "40", "MAX_TOKEN_REVOCATIONS_PER_GROUP_PER_HOUR": "3"},
			"group BOSTON's limit of 3 revocations of its CARTO token per", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The budgets are counted in fixed hours: if the hour turns
			// during the loop, its counts start again, so run it again.
			for try := 1; ; try++ {
				start := time.Now()
				err := revokeLoop(t, startBroker(t, brokertest.Env(tt.env)), tt.limit, tt.created)
				if err == nil {
					return
				}
				if try == 1 && windowTurned(start, time.Hour) {
					continue
				}
				t.Fatal(err)
			}
		})
	}

	t.Run("CARTO_TOKEN_REVOKERS=admins", func(t *testing.T) {
		b := startBroker(t, brokertest.Env(map[string]string{"CARTO_TOKEN_REVOKERS": "admins"}))
		boston := b.login("user.boston@acme.com", "boston")
		_, tok := b.post("/carto-token", boston, "")
		if code, body := b.post("/v1/revoke", boston, `{"carto_token":"`+tok["token"].(string)+`"}`); code != http.StatusForbidden || !strings.Contains(body["message"].(string), "only admins") {
			t.Fatalf("a member revoking with CARTO_TOKEN_REVOKERS=admins: %d %v", code, body)
		}
		if code, body := b.post("/carto-token", boston, ""); code != http.StatusOK || body["token"] != tok["token"] {
			t.Fatalf("the token was touched: %d %v", code, body)
		}
	})
}

// revokeLoop issues and revokes BOSTON's token until a limit answers 429,
// and checks that the refusal names limit, that wantCreated tokens were
// made at CARTO by then, and that NEW YORK is still served.
func revokeLoop(t *testing.T, b *broker, limit string, wantCreated int64) error {
	boston := b.login("user.boston@acme.com", "boston")
	var refusal *http.Response
	var body map[string]any
	for round := 0; refusal == nil; round++ {
		if round == 60 {
			return fmt.Errorf("60 issue-and-revoke rounds and no limit was reached")
		}
		resp := b.do(http.MethodPost, "/carto-token", boston, "", nil)
		if resp.StatusCode == http.StatusOK {
			tok := decode(t, resp)["token"].(string)
			resp = b.do(http.MethodPost, "/v1/revoke", boston, `{"carto_token":"`+tok+`"}`, nil)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			resp.Body.Close()
		case http.StatusTooManyRequests:
			refusal, body = resp, decode(t, resp)
		default:
			return fmt.Errorf("round %d: %d %v", round, resp.StatusCode, decode(t, resp))
		}
	}
	msg, _ := body["message"].(string)
	ra, _ := strconv.Atoi(refusal.Header.Get("Retry-After"))
	created := b.sim.Stats().TokensCreated
	t.Logf("BOSTON's loop refused after %d tokens created: %q, Retry-After %ds", created, msg, ra)
	if !strings.Contains(msg, limit) || ra <= 0 || ra > 3600 {
		return fmt.Errorf("refusal %q with Retry-After %q; want the limit %q and the rest of the hour", msg, refusal.Header.Get("Retry-After"), limit)
	}
	if created != wantCreated {
		return fmt.Errorf("%d tokens created at CARTO for BOSTON, want %d", created, wantCreated)
	}
	ny := b.login("user.ny@acme.com", "ny")
	if code, body := b.post("/carto-token", ny, ""); code != http.StatusOK || body["city"] != "NEW YORK" {
		return fmt.Errorf("NEW YORK after BOSTON's loop: %d %v", code, body)
	}
	return nil
}
