package apidoc

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestServedDocumentInfo: the served document has a real title, description
// and version (proto/tokenbroker/v1/tokenbroker_openapi.yaml), not the
// generator's placeholders (the proto's path, "version not set").
func TestServedDocumentInfo(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var doc struct {
		Swagger string `json:"swagger"`
		Info    struct {
			Title, Description, Version string
		} `json:"info"`
		Paths map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Swagger != "2.0" || len(doc.Paths) == 0 {
		t.Errorf("swagger %q with %d paths", doc.Swagger, len(doc.Paths))
	}
	if doc.Info.Title != "TokenBroker API" {
		t.Errorf("title %q, want %q", doc.Info.Title, "TokenBroker API")
	}
	if !strings.Contains(doc.Info.Description, "tokenbroker.v1.TokenBroker") {
		t.Errorf("description %q does not name the service", doc.Info.Description)
	}
	if v := doc.Info.Version; v == "" || strings.Contains(v, "not set") {
		t.Errorf("version %q", v)
	}
	// The API's version is the newest release in the changelog.
	changelog, err := os.ReadFile("../../../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^## \[(\d+\.\d+\.\d+)\]`).FindSubmatch(changelog)
	if m == nil {
		t.Fatal("CHANGELOG.md has no release section")
	}
	if doc.Info.Version != string(m[1]) {
		t.Errorf("the document's version is %q, the changelog's newest release %q: update tokenbroker_openapi.yaml and run buf generate",
			doc.Info.Version, m[1])
	}
}
