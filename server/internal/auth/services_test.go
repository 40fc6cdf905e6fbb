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
		{Name: "batch", Identity: "dns:batch.internal.acme.com", Groups: []string{"BOSTON", "NEW YORK"}},
		{Name: "legacy", Identity: "cn:legacy-cn", Groups: []string{"NEW YORK"}},
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
	_, err = NewServices([]Service{{Identity: "cn:a"}, {Name: "b", Identity: "cn:a", Groups: []string{"G"}}, {Name: "c"}, {Name: "b", Identity: "cn:b", Groups: []string{"G"}}})
	for _, want := range []string{"name is required", "identity cn:a is already service", "identity is required", "at least one group", "name is already service 2's"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation lacks %q: %v", want, err)
		}
	}
}

func TestServiceIdentityForms(t *testing.T) {
	tests := []struct {
		identity string
		want     string // the parsed identity, or a part of the error
		ok       bool
	}{
		{"spiffe://acme.com/reporting", "uri:spiffe://acme.com/reporting", true},
		{"uri:spiffe://acme.com/reporting", "uri:spiffe://acme.com/reporting", true},
		{"URI:urn:acme:reporting", "uri:urn:acme:reporting", true},
		{"dns:Reporting.Acme.com.", "dns:reporting.acme.com", true},
		{"cn:Reporting Service", "cn:Reporting Service", true},
		{"reporting.acme.com", `identity "reporting.acme.com" is ambiguous`, false},
		{"reporting.acme.com", "e.g. dns:reporting.acme.com", false},
		{"urn:acme:reporting", "is ambiguous", false},
		{"uri:reporting", `"reporting" is not an absolute URI`, false},
		{"dns:a/b", "is not a DNS name", false},
		{"cn:", "has no value", false},
		{" spiffe://acme.com/x", "leading or trailing spaces", false},
		{"", "identity is required", false},
	}
	for _, tt := range tests {
		id, err := parseServiceID(tt.identity)
		switch {
		case tt.ok && (err != nil || id.String() != tt.want):
			t.Errorf("parseServiceID(%q) = %s, %v; want %s", tt.identity, id, err, tt.want)
		case !tt.ok && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("parseServiceID(%q) = %s, %v; want an error with %q", tt.identity, id, err, tt.want)
		}
	}
	// A service is named in its identity's error, with the fix.
	_, err := NewServices([]Service{{Name: "batch", Identity: "batch.acme.com", Groups: []string{"G"}}})
	if err == nil || !strings.Contains(err.Error(), `service 1 ("batch"): identity "batch.acme.com" is ambiguous`) || !strings.Contains(err.Error(), "cn:") {
		t.Fatalf("ambiguous identity: %v", err)
	}
}
