package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
)

// Finding 4: a revoked IdP token without jti was replayed by re-encoding its
// signature (RS256: unused bits of the last base64url character; ES256:
// s → n−s), and was still accepted after a restart.
func TestAttackRevokedIdPTokenReencodedSignature(t *testing.T) {
	rsa, ec := idptest.New(t, "RS256"), idptest.New(t, "ES256")
	yaml := policies + `
identity_providers:
  - {name: rsa-sso, issuer: "` + rsa.URL() + `", audience: tokenbroker-api, algorithms: [RS256]}
  - {name: ec-sso, issuer: "` + ec.URL() + `", audience: tokenbroker-api, algorithms: [ES256]}
`
	env := map[string]string{"TOKENBROKER_DB": filepath.Join(t.TempDir(), "tokenbroker.db")}
	b := startBroker(t, brokertest.Config(yaml), brokertest.Env(env))

	type attack struct{ name, token string }
	var attacks []attack
	for alg, iss := range map[string]*idptest.Issuer{"RS256": rsa, "ES256": ec} {
		tok := iss.Sign(t, jwt.MapClaims{ // no jti
			"iss": iss.URL(), "aud": "tokenbroker-api", "sub": "alice", "groups": []string{"BOSTON"},
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		})
		if code, body := b.post("/v1/carto-token", tok, "{}"); code != http.StatusOK {
			t.Fatalf("%s token before logout: %d %v", alg, code, body)
		}
		if code, body := b.post("/v1/revoke", tok, `{"session":true}`); code != http.StatusOK {
			t.Fatalf("logout: %d %v", code, body)
		}
		attacks = append(attacks,
			attack{alg + " revoked token", tok},
			attack{alg + " re-encoded variant", iss.SignatureVariant(t, tok)})
	}
	refused := func(b *broker, when string) {
		t.Helper()
		for _, a := range attacks {
			if code, _ := b.post("/v1/carto-token", a.token, "{}"); code != http.StatusUnauthorized {
				t.Errorf("%s, %s: %d, want 401", a.name, when, code)
			}
		}
	}
	refused(b, "after logout")

	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	restarted := startBroker(t, brokertest.Config(yaml), brokertest.Env(env))
	refused(restarted, "after a restart")
}

// Finding 6: a certificate of the client CA with CN=spiffe://acme.com/reporting
// and only a DNS SAN obtained the reporting service's identity and tokens.
func TestAttackServiceIdentityFromCommonName(t *testing.T) {
	pki := newPKI(t)
	b := startBroker(t, brokertest.Config(policies+`
services:
  - name: reporting
    identity: spiffe://acme.com/reporting
    groups: [BOSTON]
  - name: legacy
    identity: "cn:legacy-batch"
    groups: [BOSTON]
`), brokertest.Env(map[string]string{"TLS_CERT_FILE": pki.serverCert, "TLS_KEY_FILE": pki.serverKey, "TLS_CLIENT_CA_FILE": pki.caFile}))
	client := func(cn string, dns ...string) tls.Certificate {
		return pki.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	}
	tests := []struct {
		name string
		cert tls.Certificate
		want codes.Code
	}{
		{"CN spelling the SPIFFE ID, DNS SAN only", client("spiffe://acme.com/reporting", "evil.acme.com"), codes.Unauthenticated},
		{"CN of a cn: service on a certificate with SANs", client("legacy-batch", "evil.acme.com"), codes.Unauthenticated},
		{"the real reporting service", pki.client(t, "spiffe://acme.com/reporting"), codes.OK},
		{"the cn: service, no SANs", client("legacy-batch"), codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.grpcWithCert(tt.cert).IssueCartoToken(context.Background(), &tokenbrokerv1.IssueCartoTokenRequest{Group: "BOSTON"})
			if status.Code(err) != tt.want {
				t.Fatalf("%v, want %v", err, tt.want)
			}
		})
	}
}

// Finding 8: a revoked session (or IdP token) was accepted again during the
// 30 s clock-skew leeway after its exp, because its revocation ended at exp.
// The clock-driven check is auth's TestAttackRevokedTokenWithinLeewayAfterExpiry;
// here, the wired broker records the revocation until exp + leeway.
func TestAttackRevokedSessionWithinLeeway(t *testing.T) {
	idp := idptest.New(t, "ES256")
	b := startBroker(t, brokertest.Config(policies+`
users:
  - {username: user.boston@acme.com, password_hash: "`+bostonHash+`", group: BOSTON}
identity_providers:
  - {name: sso, issuer: "`+idp.URL()+`", audience: tokenbroker-api, algorithms: [ES256]}
`))
	const leeway = 30 * time.Second // SESSION_LEEWAY's default, and an IdP's

	_, login := b.post("/v1/login", "", `{"username":"user.boston@acme.com","password":"boston"}`)
	sessionExp, err := time.Parse(time.RFC3339, str(login["expires_at"]))
	if err != nil {
		t.Fatalf("login: %v %v", login, err)
	}
	idpExp := time.Now().Add(time.Hour).Truncate(time.Second)
	idpTok := idp.Sign(t, jwt.MapClaims{"iss": idp.URL(), "aud": "tokenbroker-api", "sub": "alice", "groups": []string{"BOSTON"}, "jti": "j1", "iat": time.Now().Unix(), "exp": idpExp.Unix()})

	for name, tc := range map[string]struct {
		token string
		exp   time.Time
	}{"session": {str(login["token"]), sessionExp}, "IdP token": {idpTok, idpExp}} {
		code, body := b.post("/v1/revoke", tc.token, `{"session":true}`)
		until, err := time.Parse(time.RFC3339, str(body["revoked_until"]))
		if code != http.StatusOK || err != nil {
			t.Fatalf("%s logout: %d %v", name, code, body)
		}
		if want := tc.exp.Add(leeway); until.Before(want) {
			t.Errorf("%s revoked until %s, before exp + leeway = %s: accepted again in between", name, until, want)
		}
	}
}
