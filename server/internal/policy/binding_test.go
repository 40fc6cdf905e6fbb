package policy

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

const guideQuery = "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = @groupcity"

func TestBind(t *testing.T) {
	p, err := Reference().Render("NEW YORK")
	if err != nil {
		t.Fatal(err)
	}
	grant := p.Grants[0].Source
	tests := []struct {
		name   string
		conn   string
		q      string
		params map[string]any
		want   string         // the query to send; "" when no template matched
		rest   map[string]any // the parameters left
		refuse string         // the refusal, when Bind refuses
	}{
		{name: "equal value: rewritten, parameter dropped", q: guideQuery, params: map[string]any{"groupcity": "NEW YORK"}, want: grant},
		{name: "other parameters kept", q: guideQuery, params: map[string]any{"groupcity": "NEW YORK", "limit": 5.0}, want: grant, rest: map[string]any{"limit": 5.0}},
		{name: "different value", q: guideQuery, params: map[string]any{"groupcity": "BOSTON"}, refuse: "does not hold the caller's group"},
		{name: "differently cased value", q: guideQuery, params: map[string]any{"groupcity": "new york"}, refuse: "does not hold the caller's group"},
		{name: "value with extra space", q: guideQuery, params: map[string]any{"groupcity": "NEW YORK "}, refuse: "does not hold the caller's group"},
		{name: "value not a string", q: guideQuery, params: map[string]any{"groupcity": []any{"NEW YORK"}}, refuse: "does not hold the caller's group"},
		{name: "missing value", q: guideQuery, params: map[string]any{"city": "NEW YORK"}, refuse: "is missing"},
		{name: "no parameters at all", q: guideQuery, refuse: "is missing"},
		{name: "parameter name in another case beside it", q: guideQuery, params: map[string]any{"groupcity": "NEW YORK", "GROUPCITY": "BOSTON"}, refuse: "given twice"},
		{name: "white space and a trailing semicolon", q: "  SELECT *\n\tFROM `carto-demo-data`.demo_tables.retail_stores\n  WHERE city =  @groupcity ;\n", params: map[string]any{"groupcity": "NEW YORK"}, want: grant},
		{name: "a comment is text: no template", q: guideQuery + " -- mine", params: map[string]any{"groupcity": "BOSTON"}},
		{name: "keyword case is text: no template", q: strings.Replace(guideQuery, "SELECT", "select", 1), params: map[string]any{"groupcity": "BOSTON"}},
		{name: "other table: no template", q: strings.Replace(guideQuery, "retail_stores", "other", 1), params: map[string]any{"groupcity": "BOSTON"}},
		{name: "other connection: no template", conn: "other", q: guideQuery, params: map[string]any{"groupcity": "BOSTON"}},
		{name: "the literal grant itself: no template", q: grant},
		{name: "other parameter name: no template", q: strings.Replace(guideQuery, "@groupcity", "@city", 1), params: map[string]any{"city": "BOSTON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := tt.conn
			if conn == "" {
				conn = "carto_dw"
			}
			b, err := p.Bind(conn, tt.q, tt.params)
			if tt.refuse != "" {
				if !errors.Is(err, ErrBinding) || !strings.Contains(err.Error(), tt.refuse) {
					t.Fatalf("Bind = %+v, %v; want a refusal saying %q", b, err, tt.refuse)
				}
				if strings.Contains(err.Error(), "NEW YORK") {
					t.Errorf("the refusal %q names the caller's group", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Bind: %v", err)
			}
			if (b.Template != nil) != (tt.want != "") || b.Query != tt.want {
				t.Fatalf("Bind = template %v, query %q; want %q", b.Template, b.Query, tt.want)
			}
			if !maps.Equal(b.Parameters, tt.rest) {
				t.Errorf("parameters left = %v, want %v", b.Parameters, tt.rest)
			}
		})
	}
}

func TestBindWithoutBoundParameters(t *testing.T) {
	tpl := Reference()
	tpl.BoundParameters = nil
	p, err := tpl.Render("BOSTON")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := p.Bind("carto_dw", guideQuery, map[string]any{"groupcity": "BOSTON"}); err != nil || b.Template != nil {
		t.Fatalf("Bind = %+v, %v; a policy without bound parameters has no template", b, err)
	}
}

func TestBoundParametersValidation(t *testing.T) {
	tests := []struct {
		name  string
		bound map[string]string
		src   string
		want  string
	}{
		{name: "not a name", bound: map[string]string{"group city": Placeholder}, want: "is not a query parameter name"},
		{name: "unknown value", bound: map[string]string{"groupcity": "{{user}}"}, want: "only {{group}} is supported"},
		{name: "unused", bound: map[string]string{"groupcity": Placeholder}, src: "SELECT 1", want: "which no grant's source uses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl := Reference()
			tpl.BoundParameters = tt.bound
			if tt.src != "" {
				tpl.Grants[0].Source, tpl.Grants[0].Shared = tt.src, true
			}
			errs := tpl.Validate()
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) {
				t.Fatalf("Validate = %v, want one error saying %q", errs, tt.want)
			}
		})
	}
}

func TestNormalizeSQL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT  *\n FROM t", "SELECT * FROM t"},
		{"  SELECT 1;  ", "SELECT 1"},
		{"SELECT 1 ; ;", "SELECT 1"},
		{"SELECT 'NEW  YORK'", "SELECT 'NEW  YORK'"},
		{"SELECT 'it\\'s  here'  x", "SELECT 'it\\'s  here' x"},
		{"SELECT `a  b`,\t\"c  d\"", "SELECT `a  b`, \"c  d\""},
		{"SELECT ';'", "SELECT ';'"},
		{"SELECT 'open;  ", "SELECT 'open;  "},
	}
	for _, tt := range tests {
		if got := NormalizeSQL(tt.in); got != tt.want {
			t.Errorf("NormalizeSQL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
