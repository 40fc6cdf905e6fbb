package app_test

// Attacks on the grant: a group name written to break out of the SQL string
// literal it is rendered into, so that the CARTO token reads other groups'
// rows.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/idptest"
)

// storesByGroup is the grant of every group: the retail stores of the city
// named by the group.
const storesByGroup = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = "

// Attack: SQL literal breakout. The company IdP (whose group claim a user may
// influence, e.g. through self-service groups) names groups such as
// `x' OR '1'='1`, `x\' OR 1=1 --`, `BOSTON' AND city != 'x`, lone and doubled
// backslashes, Unicode look-alike quotes, NUL and a newline. For both
// dialects (BigQuery, PostgreSQL E'...'), the rendered grant stays one
// literal: the CARTO emulator, which parses both, runs it and returns no row
// of any real city, and the token is refused Boston's query; a name that
// cannot be a literal (control characters) gets no token at all.
func TestAttackSQLLiteralBreakout(t *testing.T) {
	breakouts := []string{
		`x' OR '1'='1`,
		`x\' OR 1=1 --`,
		`x'' OR 1=1 --`,
		`BOSTON' AND city != 'x`,
		`BOSTON\' AND city != \'x`,
		`NEW YORK' --`,
		`\`,
		`\\`,
		`x\`,
		`'`,
		`\'`,
		"x’ OR ’1’=’1", // U+2019
		"xʼ OR ʼ1ʼ=ʼ1", // U+02BC
		"x＇ OR ＇1＇=＇1", // U+FF07
		"x\u2028' OR '1'='1",
	}
	refused := []string{"x\x00' OR '1'='1", "x\n' OR '1'='1", "x\r' OR 1=1"}
	for _, tc := range []struct{ dialect, prefix string }{{"bigquery", "'"}, {"postgres", "E'"}} {
		t.Run(tc.dialect, func(t *testing.T) {
			idp := idptest.New(t, "RS256")
			b := startBroker(t, brokertest.Config(fmt.Sprintf(`
groups:
  "*":
    grants: [{connection: carto_dw, dialect: %s, source: "%s{{group}}"}]
    allowed_apis: [sql]
identity_providers:
  - {name: corp, issuer: %q, audience: %s, algorithms: [RS256]}
`, tc.dialect, storesByGroup, idp.URL(), idpAudience)))
			issue := func(t *testing.T, group string) (int, map[string]any) {
				t.Helper()
				return b.post("/carto-token", idp.Sign(t, with(idpClaims(idp), "groups", []string{group})), "")
			}

			// The oracle works: a real city's token reads that city's rows.
			code, body := issue(t, "NEW YORK")
			if code != http.StatusOK {
				t.Fatalf("NEW YORK: %d %v", code, body)
			}
			if st, rows := b.query("sql", body["token"].(string), grantSource(t, body)); st != http.StatusOK || len(cities(t, rows)) != 1 || cities(t, rows)["NEW YORK"] == 0 {
				t.Fatalf("NEW YORK's grant reads %d %v", st, rows)
			}

			for _, group := range breakouts {
				t.Run(group, func(t *testing.T) {
					code, body := issue(t, group)
					if code != http.StatusOK {
						t.Fatalf("issue: %d %v", code, body)
					}
					src := grantSource(t, body)
					if !strings.HasPrefix(src, storesByGroup+tc.prefix) || !strings.HasSuffix(src, "'") {
						t.Fatalf("grant %q is not the template with one %s literal", src, tc.dialect)
					}
					token := body["token"].(string)
					st, rows := b.query("sql", token, src)
					if st != http.StatusOK {
						t.Fatalf("the granted query does not run as one literal: %d %v", st, rows)
					}
					if got := cities(t, rows); len(got) != 0 {
						t.Fatalf("the grant of group %q reads the rows of %v", group, got)
					}
					if st, _ := b.query("sql", token, bostonSQL); st != http.StatusForbidden {
						t.Fatalf("its token runs Boston's query: %d", st)
					}
				})
			}
			before := b.sim.Stats().TokensCreated
			for _, group := range refused {
				if code, body := issue(t, group); code == http.StatusOK || code >= 500 {
					t.Errorf("group %q: %d %v, want a 4xx refusal", group, code, body)
				}
			}
			if n := b.sim.Stats().TokensCreated - before; n != 0 {
				t.Fatalf("%d CARTO tokens created for groups that cannot be literals", n)
			}
		})
	}
}

// grantSource is the source of the only grant of a carto-token answer.
func grantSource(t *testing.T, body map[string]any) string {
	t.Helper()
	grants, _ := body["grants"].([]any)
	if len(grants) != 1 {
		t.Fatalf("grants %v, want one", body["grants"])
	}
	return grants[0].(map[string]any)["source"].(string)
}
