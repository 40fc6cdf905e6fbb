package auth

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestServices(t *testing.T) {
	s, err := NewServices([]Service{
		{Name: "reporting", Identity: "spiffe://acme.com/reporting", Groups: []string{"BOSTON"}},
		{Name: "batch", Identity: "batch.internal.acme.com", Groups: []string{"BOSTON", "NEW YORK"}},
		{Name: "legacy", Identity: "legacy-cn", Groups: []string{"NEW YORK"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	spiffe, _ := url.Parse("spiffe://acme.com/reporting")
	tests := []struct {
		name string
		cert *x509.Certificate
		want string
	}{
		{"URI SAN", &x509.Certificate{URIs: []*url.URL{spiffe}, Subject: pkix.Name{CommonName: "batch.internal.acme.com"}}, "reporting"},
		{"DNS SAN", &x509.Certificate{DNSNames: []string{"other.acme.com", "batch.internal.acme.com"}}, "batch"},
		{"CN", &x509.Certificate{Subject: pkix.Name{CommonName: "legacy-cn"}}, "legacy"},
		{"unknown", &x509.Certificate{Subject: pkix.Name{CommonName: "stranger"}, DNSNames: []string{"x.acme.com"}}, ""},
		{"empty", &x509.Certificate{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Identify(tt.cert)
			if tt.want == "" {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("identified %+v", p)
				}
				return
			}
			if err != nil || p.Subject != tt.want || p.Kind != KindService || p.Group != "" || len(p.Groups) == 0 {
				t.Fatalf("got %+v, %v", p, err)
			}
		})
	}
	_, err = NewServices([]Service{{Identity: "a"}, {Name: "b", Identity: "a", Groups: []string{"G"}}, {Name: "c"}})
	for _, want := range []string{"name is required", "already another service's", "identity is required", "at least one group"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation lacks %q: %v", want, err)
		}
	}
}
