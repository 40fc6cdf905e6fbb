package auth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

// Service is an internal service allowed to obtain CARTO tokens for some
// groups, identified by its TLS client certificate.
type Service struct {
	Name string
	// Identity names the one certificate field that identifies the service,
	// with its type:
	//
	//	uri:spiffe://acme.com/reporting   a URI SAN (e.g. a SPIFFE ID)
	//	dns:reporting.acme.com            a DNS SAN
	//	cn:reporting                      the subject CN, of a certificate without SANs
	//
	// A bare value is accepted only where its type is unambiguous: a URI
	// with a scheme and an authority (spiffe://…, https://…) is a URI SAN.
	// Any other bare value (a host name could be a DNS SAN or a CN) is
	// refused, naming the typed forms.
	Identity string
	Groups   []string
}

// idKind is the certificate field a service identity is matched against.
type idKind string

const (
	idURI idKind = "uri"
	idDNS idKind = "dns"
	idCN  idKind = "cn"
)

// certID is a typed identity: a value in one field of a certificate.
type certID struct {
	kind  idKind
	value string
}

func (id certID) String() string { return string(id.kind) + ":" + id.value }

// Services identifies services by their verified client certificates.
type Services struct {
	byID map[certID]Service
}

// NewServices validates the services (every problem at once).
func NewServices(list []Service) (*Services, error) {
	s := &Services{byID: make(map[certID]Service, len(list))}
	names := make(map[string]int, len(list))
	var errs []error
	for i, svc := range list {
		where := fmt.Sprintf("service %d (%q)", i+1, svc.Name)
		if strings.TrimSpace(svc.Name) == "" {
			errs = append(errs, fmt.Errorf("service %d: name is required", i+1))
		} else if j, dup := names[svc.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: the name is already service %d's", where, j))
		} else {
			names[svc.Name] = i + 1
		}
		if len(svc.Groups) == 0 {
			errs = append(errs, fmt.Errorf("%s: groups must list at least one group", where))
		}
		id, err := parseServiceID(svc.Identity)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if other, dup := s.byID[id]; dup {
			errs = append(errs, fmt.Errorf("%s: identity %s is already service %q's", where, id, other.Name))
			continue
		}
		s.byID[id] = svc
	}
	return s, errors.Join(errs...)
}

// parseServiceID reads a configured identity: typed (uri:, dns:, cn:), or a
// bare URI with a scheme and an authority.
func parseServiceID(s string) (certID, error) {
	const forms = "write uri:<URI SAN>, dns:<DNS SAN> or cn:<subject CN>"
	if strings.TrimSpace(s) == "" {
		return certID{}, fmt.Errorf("identity is required: %s", forms)
	}
	if s != strings.TrimSpace(s) {
		return certID{}, fmt.Errorf("identity %q has leading or trailing spaces", s)
	}
	kind, value, typed := strings.Cut(s, ":")
	kind = strings.ToLower(kind)
	switch idKind(kind) {
	case idURI, idDNS, idCN:
	default:
		typed = false
	}
	if !typed {
		if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
			return certID{idURI, u.String()}, nil
		}
		return certID{}, fmt.Errorf("identity %q is ambiguous (a DNS SAN or the certificate's CN?): %s, e.g. dns:%s", s, forms, s)
	}
	if value == "" {
		return certID{}, fmt.Errorf("identity %q has no value after %s:", s, kind)
	}
	switch idKind(kind) {
	case idURI:
		u, err := url.Parse(value)
		if err != nil || u.Scheme == "" {
			return certID{}, fmt.Errorf("identity %q: %q is not an absolute URI", s, value)
		}
		return certID{idURI, u.String()}, nil
	case idDNS:
		if strings.ContainsAny(value, " /:@") {
			return certID{}, fmt.Errorf("identity %q: %q is not a DNS name", s, value)
		}
		return certID{idDNS, dnsKey(value)}, nil
	default:
		return certID{idCN, value}, nil
	}
}

// dnsKey is how DNS names are compared: without regard to case or a
// trailing dot.
func dnsKey(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// Identify returns the principal of the service a verified client
// certificate belongs to. Each configured identity is looked up in its own
// field only; the subject CN is consulted only when the certificate has no
// SANs at all, since a CA that issues SANs may put anything in the CN. A
// certificate matching two services is refused rather than guessed at.
func (s *Services) Identify(cert *x509.Certificate) (Principal, error) {
	var ids []certID
	for _, u := range cert.URIs {
		ids = append(ids, certID{idURI, u.String()})
	}
	for _, name := range cert.DNSNames {
		ids = append(ids, certID{idDNS, dnsKey(name)})
	}
	hasSANs := len(cert.URIs)+len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) > 0
	if !hasSANs && cert.Subject.CommonName != "" {
		ids = append(ids, certID{idCN, cert.Subject.CommonName})
	}
	var matched []Service
	for _, id := range ids {
		if svc, ok := s.byID[id]; ok && !slices.ContainsFunc(matched, func(m Service) bool { return m.Name == svc.Name }) {
			matched = append(matched, svc)
		}
	}
	switch len(matched) {
	case 0:
		return Principal{}, refusal.New(ErrUnauthenticated, "the client certificate is not a registered service")
	case 1:
		return Principal{Kind: KindService, Subject: matched[0].Name, Groups: matched[0].Groups}, nil
	default:
		return Principal{}, refusal.New(ErrUnauthenticated, "the client certificate matches several services")
	}
}
