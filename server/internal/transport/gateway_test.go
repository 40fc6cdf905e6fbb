package transport

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// A body over MaxBodyBytes is answered 413, whether its length is declared
// or it is streamed and cut off while decoding; a malformed body within the
// bound stays a 400.
func TestGatewayBodyLimit(t *testing.T) {
	gw := testGateway(t, testChain(slog.New(slog.DiscardHandler)))
	huge := `{"username":"` + strings.Repeat("u", MaxBodyBytes) + `"}`
	tests := []struct {
		name     string
		body     io.Reader
		wantHTTP int
		wantMsg  string
	}{
		{"declared length", strings.NewReader(huge), http.StatusRequestEntityTooLarge, "request body larger than 65536 bytes"},
		// Not a *strings.Reader: httptest leaves the length unknown.
		{"streamed", io.MultiReader(strings.NewReader(huge)), http.StatusRequestEntityTooLarge, "request body larger than 65536 bytes"},
		{"malformed, within the bound", strings.NewReader(`{"username":`), http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/login", tt.body)
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, req)
			var body errorBody
			if err := json.NewDecoder(rec.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.wantHTTP || body.Code != codes.InvalidArgument || (tt.wantMsg != "" && body.Message != tt.wantMsg) {
				t.Fatalf("%d %+v, want %d %q", rec.Code, body, tt.wantHTTP, tt.wantMsg)
			}
		})
	}
}
