package audit

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestLogLine pins the audit line's shape: the typed actions and outcomes
// are written as the plain strings log readers match on.
func TestLogLine(t *testing.T) {
	var out bytes.Buffer
	h := slog.NewJSONHandler(&out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	l := New(h)
	l.Log(context.Background(), Event{
		Action: ActionIssue, Outcome: OutcomeSuccess, Code: "OK", Kind: "user", Subject: "u@acme.com",
		Group: "BOSTON", Addr: "10.0.0.1:5000", Detail: "mint", Token: Fingerprint("tok"), Count: 0,
	})
	l.Log(context.Background(), Event{Action: ActionLogin, Outcome: OutcomeInvalid, Code: "InvalidArgument", Subject: strings.Repeat("é", 200)})
	want := `{"level":"INFO","msg":"audit","action":"issue","outcome":"success","code":"OK","kind":"user","subject":"u@acme.com","group":"BOSTON","addr":"10.0.0.1:5000","detail":"mint","token":"` + Fingerprint("tok") + `"}
{"level":"INFO","msg":"audit","action":"login","outcome":"invalid","code":"InvalidArgument","subject":"` + strings.Repeat("é", 128) + `…(truncated, 400 bytes)"}
`
	if out.String() != want {
		t.Fatalf("audit lines:\n%s\nwant\n%s", out.String(), want)
	}
	for _, c := range []struct {
		got  string
		want string
	}{
		{string(ActionLogin), "login"}, {string(ActionIssue), "issue"}, {string(ActionRevoke), "revoke"}, {string(ActionList), "list"},
		{string(OutcomeSuccess), "success"}, {string(OutcomeFailure), "failure"}, {string(OutcomeDenied), "denied"},
		{string(OutcomeInvalid), "invalid"}, {string(OutcomeError), "error"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}
