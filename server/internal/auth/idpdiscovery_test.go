package auth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
)

func TestIdPDiscoveryChecks(t *testing.T) {
	iss := idptest.New(t, "RS256")
	serveDoc := func(doc string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.ReplaceAll(doc, "SELF", "http://"+r.Host))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name   string
		issuer string
		want   string
	}{
		{"issuer with a trailing slash the IdP does not use", iss.URL() + "/", "want exactly"},
		{"document of another issuer", serveDoc(`{"issuer":"` + iss.URL() + `","jwks_uri":"` + iss.URL() + `/jwks"}`), "want exactly"},
		{"jwks_uri not http", serveDoc(`{"issuer":"SELF","jwks_uri":"file:///etc/passwd"}`), "jwks_uri"},
		{"no jwks_uri", serveDoc(`{"issuer":"SELF"}`), "jwks_uri"},
		{"not JSON", serveDoc(`<html>`), "discovery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewIdP(t.Context(), IdPConfig{Issuer: tt.issuer, Audience: idpAudience, Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewIdP = %v, want an error about %q", err, tt.want)
			}
		})
	}
}
