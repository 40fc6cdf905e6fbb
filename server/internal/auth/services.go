package auth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Service is an internal service allowed to obtain CARTO tokens for some
// groups, identified by its TLS client certificate.
type Service struct {
	Name string
	// Identity is matched against the certificate's URI SANs (e.g. a SPIFFE
	// ID), then its DNS SANs, then its subject common name.
	Identity string
	Groups   []string
}

// Services identifies services by their verified client certificates.
type Services struct {
	byIdentity map[string]Service
}

// NewServices validates the services (every problem at once).
func NewServices(list []Service) (*Services, error) {
	s := &Services{byIdentity: make(map[string]Service, len(list))}
	var errs []error
	for i, svc := range list {
		where := fmt.Sprintf("service %d (%q)", i+1, svc.Name)
		if strings.TrimSpace(svc.Name) == "" {
			errs = append(errs, fmt.Errorf("service %d: name is required", i+1))
		}
		if strings.TrimSpace(svc.Identity) == "" {
			errs = append(errs, fmt.Errorf("%s: identity is required (a URI or DNS SAN, or the certificate's CN)", where))
		} else if _, dup := s.byIdentity[svc.Identity]; dup {
			errs = append(errs, fmt.Errorf("%s: identity %q is already another service's", where, svc.Identity))
		}
		if len(svc.Groups) == 0 {
			errs = append(errs, fmt.Errorf("%s: groups must list at least one group", where))
		}
		s.byIdentity[svc.Identity] = svc
	}
	return s, errors.Join(errs...)
}

// Identify returns the principal of the service a verified client
// certificate belongs to.
func (s *Services) Identify(cert *x509.Certificate) (Principal, error) {
	var ids []string
	for _, u := range cert.URIs {
		ids = append(ids, u.String())
	}
	ids = append(ids, cert.DNSNames...)
	ids = append(ids, cert.Subject.CommonName)
	for _, id := range ids {
		if svc, ok := s.byIdentity[id]; ok && id != "" {
			return Principal{Kind: KindService, Subject: svc.Name, Groups: svc.Groups}, nil
		}
	}
	return Principal{}, fmt.Errorf("%w: the client certificate is not a registered service", ErrUnauthenticated)
}
