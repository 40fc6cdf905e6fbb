package broker

import (
	"errors"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
)

func TestMintable(t *testing.T) {
	groups, err := policy.NewSet(policy.SetConfig{Default: new(policy.Reference())})
	if err != nil {
		t.Fatal(err)
	}
	queries, err := namedquery.NewSet([]namedquery.Query{{
		Name: "mine", Connection: "carto_dw", SQL: "SELECT * FROM t WHERE city = @city", APIs: []string{namedquery.APISQL},
		Groups: []string{namedquery.AllGroups}, Params: []namedquery.Param{{Name: "city", Bind: namedquery.BindGroup}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	audience := namedquery.AudienceKey(namedquery.Caller{Group: "BOSTON"})
	tests := []struct {
		name   string
		m      Mintable
		key    string
		source string // the one grant; "" when refused
	}{
		{name: "a group's key: its policy", m: Mintable{Groups: groups, Queries: queries}, key: "BOSTON", source: "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'BOSTON'"},
		{name: "an audience's key: its queries", m: Mintable{Groups: groups, Queries: queries}, key: audience, source: "SELECT * FROM t WHERE city = @city"},
		{name: "an audience's key without named queries", m: Mintable{Groups: groups}, key: audience},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.m.For(tt.key)
			if tt.source == "" {
				if !errors.Is(err, namedquery.ErrNoQueries) {
					t.Fatalf("For = %+v, %v; want ErrNoQueries", p, err)
				}
				return
			}
			if err != nil || len(p.Grants) != 1 || p.Grants[0].Source != tt.source || p.Hash == "" {
				t.Fatalf("For = %+v, %v; want the grant %q", p, err, tt.source)
			}
		})
	}
	// Issuing reads the groups' policies only: the audience's key is not a
	// group a token can be issued for (the default policy cannot render a
	// group with a control character).
	if _, err := groups.For(audience); err == nil {
		t.Fatal("the groups' policies gave a policy for a query audience's key")
	}
}
