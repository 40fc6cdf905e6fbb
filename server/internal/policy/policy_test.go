package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReferenceRender(t *testing.T) {
	p, err := Reference().Render("O'BRIEN")
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores WHERE city = 'O\\'BRIEN'"
	if len(p.Grants) != 1 || p.Grants[0].Source != want || p.Grants[0].Connection != "carto_dw" {
		t.Fatalf("grants = %+v, want source %q", p.Grants, want)
	}
	if strings.Join(p.AllowedAPIs, ",") != "maps" || p.TokenTTL != DefaultTokenTTL || len(p.Hash) != 64 {
		t.Fatalf("policy = %+v", p)
	}
}

func TestHashIsCanonical(t *testing.T) {
	base := Template{
		Grants: []GrantTemplate{
			{Connection: "carto_dw", Source: "SELECT 1 WHERE g = {{group}}"},
			{Connection: "pg", Source: "SELECT 2 WHERE g = {{group}}", Dialect: Postgres},
		},
		AllowedAPIs: []string{"sql", "maps"},
		Referers:    []string{"https://b.example", "https://a.example"},
	}
	h := func(t *testing.T, tpl Template, group string) string {
		t.Helper()
		p, err := tpl.Render(group)
		if err != nil {
			t.Fatal(err)
		}
		return p.Hash
	}
	ref := h(t, base, "BOSTON")

	reordered := base
	reordered.Grants = []GrantTemplate{base.Grants[1], base.Grants[0], base.Grants[0]}
	reordered.AllowedAPIs = []string{"maps", "sql", "maps"}
	reordered.Referers = []string{"https://a.example", "https://b.example"}
	longer := base
	longer.TokenTTL = 2 * time.Hour

	same := map[string]Template{"order and duplicates": reordered, "lifetime": longer}
	for name, tpl := range same {
		if got := h(t, tpl, "BOSTON"); got != ref {
			t.Errorf("%s changed the hash", name)
		}
	}

	fewerAPIs := base
	fewerAPIs.AllowedAPIs = []string{"maps"}
	noReferers := base
	noReferers.Referers = nil
	// A boundary shift between connection and source must not collide.
	shifted := Template{Grants: []GrantTemplate{{Connection: "carto_dwS", Source: "ELECT 1"}}, AllowedAPIs: []string{"maps"}}
	unshifted := Template{Grants: []GrantTemplate{{Connection: "carto_dw", Source: "SELECT 1"}}, AllowedAPIs: []string{"maps"}}
	if h(t, shifted, "X") == h(t, unshifted, "X") {
		t.Error("connection/source boundary shift collides")
	}
	differ := map[string]string{
		"group":    h(t, base, "NEW YORK"),
		"apis":     h(t, fewerAPIs, "BOSTON"),
		"referers": h(t, noReferers, "BOSTON"),
	}
	for name, got := range differ {
		if got == ref {
			t.Errorf("changing %s kept the hash", name)
		}
	}
}

func TestTemplateValidate(t *testing.T) {
	tests := []struct {
		name string
		tpl  Template
		want []string // substrings, one per expected error
	}{
		{"reference", Reference(), nil},
		{"empty", Template{}, []string{"at least one grant", "allowed_apis must name"}},
		{"bad grant", Template{
			Grants:      []GrantTemplate{{Connection: " ", Source: "SELECT {{city}}", Dialect: "mysql"}},
			AllowedAPIs: []string{"maps", "tiles"},
			Referers:    []string{"https://app.example.com/", "app.example.com", "https://ok.example.com"},
			TokenTTL:    time.Minute,
		}, []string{"connection is required", "unknown dialect", "unknown placeholder", "has no {{group}}", "unknown API \"tiles\"", "trailing slash", "must be an origin", "token_ttl"}},
		{"the same rows for every group", Template{
			Grants: []GrantTemplate{{Connection: "carto_dw", Source: "SELECT * FROM stores"}}, AllowedAPIs: []string{"maps"},
		}, []string{"its source has no {{group}}, so every member of every group it applies to reads the same rows"}},
		{"shared, as meant", Template{
			Grants: []GrantTemplate{{Connection: "carto_dw", Source: "SELECT * FROM lookup", Shared: true}, {Connection: "carto_dw", Source: ReferenceSource}}, AllowedAPIs: []string{"maps"},
		}, nil},
		{"shared, but the group's own", Template{
			Grants: []GrantTemplate{{Connection: "carto_dw", Source: ReferenceSource, Shared: true}}, AllowedAPIs: []string{"maps"},
		}, []string{"shared: true, but its source holds {{group}}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.tpl.Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tt.want))
			}
			if len(errs) == 0 {
				return
			}
			all := errors.Join(errs...).Error()
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("errors %q lack %q", all, w)
				}
			}
		})
	}
}

func TestSet(t *testing.T) {
	boston := Reference()
	boston.AllowedAPIs = []string{"maps", "sql"}
	ref := Reference()
	s, err := NewSet(SetConfig{Groups: map[string]Template{"BOSTON": boston}, Default: &ref})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.For("BOSTON")
	if err != nil || strings.Join(b.AllowedAPIs, ",") != "maps,sql" {
		t.Fatalf("BOSTON = %+v, %v", b, err)
	}
	ny, err := s.For("NEW YORK")
	if err != nil || strings.Join(ny.AllowedAPIs, ",") != "maps" || !strings.Contains(ny.Grants[0].Source, "'NEW YORK'") {
		t.Fatalf("NEW YORK = %+v, %v", ny, err)
	}
	if _, err := s.For("BAD\nGROUP"); !errors.Is(err, ErrUnsafeValue) {
		t.Fatalf("unsafe group: err = %v", err)
	}

	strict, err := NewSet(SetConfig{Groups: map[string]Template{"BOSTON": boston}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.For("NEW YORK"); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("no default: err = %v", err)
	}
	if _, err := strict.For("BOSTON"); err != nil {
		t.Fatalf("named group without a default: %v", err)
	}

	if _, err := NewSet(SetConfig{Groups: map[string]Template{"A": {}, "B": {}}, Default: &Template{}}); err == nil || strings.Count(err.Error(), "\n") < 5 {
		t.Fatalf("NewSet should report every problem, got %v", err)
	}
}
