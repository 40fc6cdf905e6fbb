package transport

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRESTBody: any JSON body on any route gets an answer below 500 (the
// fake service panics only for the principal "G" on IssueCartoToken, which
// the chain turns into 500 on purpose; that route is fuzzed without
// credentials), and never a crash.
func FuzzRESTBody(f *testing.F) {
	gw := testGateway(f, testChain(slog.New(slog.DiscardHandler)))
	paths := []string{"/login", "/v1/login", "/carto-token", "/v1/carto-token", "/v1/revoke", "/v1/tokens"}
	for _, s := range []string{
		`{"username":"a","password":"b"}`, `{"session":true}`, `{"carto_token":"x"}`, `{"group":"G"}`,
		`{`, `[]`, `null`, `{"username":1}`, `{"session":"yes"}`, `{"a":` + strings.Repeat("[", 1000), "\xff\xfe",
	} {
		for i := range paths {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		path := paths[int(route)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body.String())
		}
	})
}
