package app_test

// Attacks on service identity over mutual TLS: claiming a registered
// service's identity without its CA's certificate.

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// reportingService registers spiffe://acme.com/reporting for Boston.
const reportingService = `
services:
  - name: reporting
    identity: spiffe://acme.com/reporting
    groups: [BOSTON]
`

// startMTLSBroker starts a broker over TLS that verifies client certificates
// against p's CA, with the reporting service registered.
func startMTLSBroker(t *testing.T, p *pki) *broker {
	t.Helper()
	return startBroker(t, brokertest.Config(testConfig+reportingService),
		brokertest.Env(map[string]string{"TLS_CERT_FILE": p.serverCert, "TLS_KEY_FILE": p.serverKey, "TLS_CLIENT_CA_FILE": p.caFile}))
}

// Attack: an `X-Forwarded-Client-Cert` header (Envoy's) or its gRPC metadata
// claiming the reporting service's SPIFFE identity, sent without a client
// certificate, as if a TLS-terminating proxy had verified one. The broker
// trusts only the certificate of its own handshake: 401 / UNAUTHENTICATED.
func TestAttackForwardedClientCertHeader(t *testing.T) {
	p := newPKI(t)
	b := startMTLSBroker(t, p)
	xfcc := `By=spiffe://acme.com/tokenbroker;Hash=0123abcd;URI=spiffe://acme.com/reporting;Subject="CN=svc"`
	for name, hdr := range map[string]http.Header{
		"X-Forwarded-Client-Cert": {"X-Forwarded-Client-Cert": {xfcc}},
		"X-Client-Cert and SSL headers": {
			"X-Client-Cert": {"spiffe://acme.com/reporting"}, "X-Ssl-Client-Verify": {"SUCCESS"},
			"X-Ssl-Client-S-Dn": {"CN=svc"}, "X-Forwarded-Proto": {"https"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp := b.do(http.MethodPost, "/v1/carto-token", "", `{"group":"BOSTON"}`, hdr)
			if body := decode(t, resp); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("REST: %d %v, want 401", resp.StatusCode, body)
			}
		})
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-client-cert", xfcc)
	if _, err := b.grpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{Group: "BOSTON"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC: %v, want UNAUTHENTICATED", err)
	}
	if s := b.sim.Stats(); s.TokensCreated != 0 {
		t.Fatalf("%d CARTO tokens created for a claimed certificate", s.TokensCreated)
	}
	// The real certificate of the service is what works.
	if _, err := b.grpcWithCert(p.client(t, "spiffe://acme.com/reporting")).IssueCartoToken(context.Background(), &tokenbrokerv1.IssueCartoTokenRequest{Group: "BOSTON"}); err != nil {
		t.Fatalf("the reporting service's own certificate: %v", err)
	}
}

// Attack: a client certificate with the registered service's SPIFFE URI,
// signed by another CA (the attacker's own). The handshake must refuse it, on
// the gRPC and the REST port, so the URI is never even looked at; with a
// session token beside it the certificate is still refused.
func TestAttackCertificateFromAnotherCA(t *testing.T) {
	p, attacker := newPKI(t), newPKI(t)
	b := startMTLSBroker(t, p)
	forged := attacker.client(t, "spiffe://acme.com/reporting")

	_, err := b.grpcWithCert(forged).IssueCartoToken(context.Background(), &tokenbrokerv1.IssueCartoTokenRequest{Group: "BOSTON"})
	if status.Code(err) != codes.Unavailable { // no connection, so no call
		t.Fatalf("gRPC with the other CA's certificate: %v, want the handshake refused (UNAVAILABLE)", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.roots, Certificates: []tls.Certificate{forged}}}}
	defer hc.CloseIdleConnections()
	for name, bearer := range map[string]string{"alone": "", "beside a session": b.login("user.boston@acme.com", "boston")} {
		req, _ := http.NewRequest(http.MethodPost, b.rest+"/v1/carto-token", strings.NewReader(`{"group":"BOSTON"}`))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("REST %s with the other CA's certificate: %d, want the handshake refused", name, resp.StatusCode)
		}
		t.Logf("REST %s: %v", name, err)
	}
	if s := b.sim.Stats(); s.TokensCreated != 0 {
		t.Fatalf("%d CARTO tokens created for a foreign certificate", s.TokensCreated)
	}
}
