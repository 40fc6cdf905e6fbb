package namedquery

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

func ptr(s string) *string { return &s }

// storesByType is the demo's kind of query: the caller's city, a store
// type from a list, a row limit with a default.
func storesByType() Query {
	return Query{
		Name:       "stores-by-type",
		Connection: "carto_dw",
		SQL:        "SELECT * FROM `carto-demo-data`.demo_tables.retail_stores\nWHERE city = @city AND storetype = @storetype -- not @this\nLIMIT @n",
		APIs:       []string{APISQL, APIMaps},
		Groups:     []string{"BOSTON", "NEW YORK"},
		CacheTTL:   time.Minute,
		Params: []Param{
			{Name: "city", Bind: BindGroup},
			{Name: "storetype", Type: String, Required: true, Allowed: []string{"Supermarket", "Drugstore"}},
			{Name: "n", Type: Integer, Default: ptr("10"), Min: "1", Max: "100"},
		},
	}
}

func TestSQLParams(t *testing.T) {
	tests := []struct {
		sql  string
		want []string
	}{
		{"SELECT @a, @b_2 FROM t WHERE x = @a", []string{"a", "b_2"}},
		{"SELECT '@no', \"@no\", `@no`, 'it\\'s @no' FROM t WHERE y = @yes", []string{"yes"}},
		{"SELECT 1 -- @no\n, @yes /* @no */", []string{"yes"}},
		{"SELECT @@dataset_id, @1, email FROM t WHERE a='x@y' AND b = @b", []string{"b"}},
		{"SELECT 'unterminated @no", nil},
	}
	for _, tt := range tests {
		if got := sqlParams(tt.sql); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("sqlParams(%q) = %v, want %v", tt.sql, got, tt.want)
		}
	}
}

func TestNewSetReportsEveryProblem(t *testing.T) {
	bad := []Query{
		{Name: "Bad Name", SQL: "SELECT @undeclared", APIs: []string{"tiles"}, Groups: []string{"A"}, Public: true,
			CacheTTL: 48 * time.Hour, MaxRows: -1, MaxBytes: 1 << 40,
			Params: []Param{{Name: "unused", Type: "uuid"}}},
		{Name: "public-bound", Connection: "c", SQL: "SELECT @city, @x, @y, @z, @w, @v", APIs: []string{APISQL}, Public: true, Params: []Param{
			{Name: "city", Bind: BindGroup},
			{Name: "x", Bind: "tenant", Type: Integer},
			{Name: "y", Type: Integer, Required: true, Default: ptr("1"), Pattern: "[0-9]+", Min: "5", Max: "1"},
			{Name: "z", Type: String, Allowed: []string{"ok", strings.Repeat("x", 300)}, Default: ptr("no"), Pattern: "[a-z]+"},
			{Name: "w", Type: Date, Min: "yesterday"},
			{Name: "v", Bind: "claim:"},
		}},
		{Name: "public-bound", Connection: "c", SQL: "SELECT 1", APIs: []string{APISQL}, Groups: []string{AllGroups}},
		{Name: "nobody", Connection: "c", SQL: "SELECT @a", APIs: []string{APIMaps}, Params: []Param{{Name: "a", Type: String}, {Name: "a", Type: String}}},
	}
	_, err := NewSet(bad)
	if err == nil {
		t.Fatal("NewSet accepted bad queries")
	}
	for _, want := range []string{
		`query "Bad Name": name "Bad Name" must be`,
		`query "Bad Name": connection is required`,
		`unknown API "tiles"`,
		`a public query names no groups`,
		`cache_ttl 48h0m0s is outside`,
		`max_rows -1 is outside`,
		`max_bytes 1099511627776 is outside`,
		`parameter unused: type "uuid"`,
		`sql uses @undeclared, which is not declared`,
		`parameter unused is declared but sql does not use @unused`,
		`parameter city: a public query has no caller: it cannot bind group`,
		`parameter x: bind "tenant": bind to group, user or claim:<name>`,
		`parameter x: a bound parameter holds the caller's tenant: it takes no type but string`,
		`parameter y: required and default exclude each other`,
		`parameter y: pattern, min_length and max_length apply to strings only`,
		`parameter y: min 5 is above max 1`,
		`parameter z: allowed value "xxx`,
		`parameter z: default "no": must be one of`,
		`parameter w: min "yesterday" must be a date`,
		`parameter v: bind "claim:": bind to group, user or claim:<name>`,
		`query "public-bound": the name is used by another query`,
		`query "nobody": groups must name who may run it`,
		`query "nobody": parameter a is declared twice`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("the error:\n%v", err)
	}
}

func TestBind(t *testing.T) {
	s, err := NewSet([]Query{storesByType()})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := s.Get("stores-by-type")
	boston := Caller{Group: "BOSTON", User: "user.boston@acme.com"}
	tests := []struct {
		name     string
		caller   Caller
		supplied map[string]string
		want     map[string]any
		refusal  error
		says     string
	}{
		{name: "bound, allowed, default", caller: boston, supplied: map[string]string{"storetype": "Supermarket"},
			want: map[string]any{"city": "BOSTON", "storetype": "Supermarket", "n": int64(10)}},
		{name: "all given", caller: boston, supplied: map[string]string{"storetype": "Drugstore", "n": " 100 "},
			want: map[string]any{"city": "BOSTON", "storetype": "Drugstore", "n": int64(100)}},
		{name: "a bound parameter supplied", caller: boston, supplied: map[string]string{"storetype": "Drugstore", "city": "NEW YORK"},
			refusal: ErrInvalidParameter, says: "parameter city is the caller's group: it cannot be supplied"},
		{name: "unknown parameter", caller: boston, supplied: map[string]string{"storetype": "Drugstore", "limit": "5"},
			refusal: ErrInvalidParameter, says: `unknown parameter "limit": query stores-by-type takes storetype, n`},
		{name: "outside the allowed values", caller: boston, supplied: map[string]string{"storetype": "Bakery"},
			refusal: ErrInvalidParameter, says: "parameter storetype must be one of: Supermarket, Drugstore"},
		{name: "wrong type", caller: boston, supplied: map[string]string{"storetype": "Drugstore", "n": "ten"},
			refusal: ErrInvalidParameter, says: "parameter n must be an integer"},
		{name: "below its range", caller: boston, supplied: map[string]string{"storetype": "Drugstore", "n": "0"},
			refusal: ErrInvalidParameter, says: "parameter n must be at least 1"},
		{name: "above its range", caller: boston, supplied: map[string]string{"storetype": "Drugstore", "n": "101"},
			refusal: ErrInvalidParameter, says: "parameter n must be at most 100"},
		{name: "required missing", caller: boston, supplied: nil,
			refusal: ErrInvalidParameter, says: "parameter storetype is required"},
		{name: "no group to bind", caller: Caller{User: "svc"}, supplied: map[string]string{"storetype": "Drugstore"},
			refusal: ErrNoIdentity, says: "needs the caller's group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, err := q.Bind(tt.caller, tt.supplied)
			if tt.refusal != nil {
				var r *refusal.Error
				if !errors.Is(err, tt.refusal) || !errors.As(err, &r) || !strings.Contains(r.CallerMessage(), tt.says) {
					t.Fatalf("Bind = %v; want a refusal of %v saying %q", err, tt.refusal, tt.says)
				}
				if strings.Contains(err.Error(), "SELECT") {
					t.Fatalf("the refusal shows the SQL: %v", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(run.Params, tt.want) {
				t.Fatalf("Bind = %v, %v; want %v", run.Params, err, tt.want)
			}
		})
	}
	// The cache key holds every value after binding: the same supplied
	// values for another group are another key.
	a, _ := q.Bind(boston, map[string]string{"storetype": "Drugstore"})
	b, _ := q.Bind(Caller{Group: "NEW YORK"}, map[string]string{"storetype": "Drugstore"})
	c, _ := q.Bind(boston, map[string]string{"storetype": "Drugstore", "n": "10"})
	if a.Key == b.Key || a.Key != c.Key {
		t.Fatalf("keys: boston %s, new york %s, boston with the default given %s", a.Key, b.Key, c.Key)
	}
}

func TestValueTypes(t *testing.T) {
	tests := []struct {
		p    Param
		in   string
		want any
		err  string
	}{
		{p: Param{Type: Number, Min: "-1.5"}, in: "2.5e1", want: 25.0},
		{p: Param{Type: Number}, in: "NaN", err: "must be a finite number"},
		{p: Param{Type: Boolean}, in: "true", want: true},
		{p: Param{Type: Boolean}, in: "yes", err: "must be true or false"},
		{p: Param{Type: Date, Min: "2026-01-01"}, in: "2026-12-01", want: "2026-12-01"},
		{p: Param{Type: Date, Min: "2026-01-01"}, in: "2025-12-31", err: "must be at least 2026-01-01"},
		{p: Param{Type: Date}, in: "01/12/2026", err: "must be a date"},
		{p: Param{Type: Timestamp, Max: "2026-12-01T10:00:00Z"}, in: "2026-12-01T10:30:00+01:00", want: "2026-12-01T09:30:00Z"},
		{p: Param{Type: Timestamp, Max: "2026-12-01T10:00:00Z"}, in: "2026-12-01T10:30:00Z", err: "must be at most"},
		{p: Param{Type: String, Pattern: "[A-Z]{2}"}, in: "MA", want: "MA"},
		{p: Param{Type: String, Pattern: "[A-Z]{2}"}, in: "MAX", err: "must match the pattern [A-Z]{2}"},
		{p: Param{Type: String, MinLength: 2, MaxLength: 3}, in: "a", err: "at least 2 characters"},
		{p: Param{Type: String}, in: strings.Repeat("é", DefaultMaxLength+1), err: "at most 256 characters"},
		{p: Param{Type: String}, in: "\xff", err: "valid UTF-8"},
	}
	for _, tt := range tests {
		p := tt.p
		p.Name = "v"
		if errs := p.check(false); len(errs) > 0 {
			t.Fatalf("%+v: %v", tt.p, errs)
		}
		got, err := p.accept(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %q: %v, %v; want an error saying %q", tt.p.Type, tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s %q = %#v, %v; want %#v", tt.p.Type, tt.in, got, err, tt.want)
		}
	}
}

func TestWhoMayRun(t *testing.T) {
	everyone := Query{Name: "everyone", Connection: "c", SQL: "SELECT 1", APIs: []string{APISQL}, Groups: []string{AllGroups}}
	public := Query{Name: "public", Connection: "c", SQL: "SELECT 1", APIs: []string{APIMaps}, Public: true}
	s, err := NewSet([]Query{storesByType(), everyone, public})
	if err != nil {
		t.Fatal(err)
	}
	names := func(c Caller) string {
		var out []string
		for _, q := range s.Visible(c) {
			out = append(out, q.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		c    Caller
		want string
	}{
		{Caller{Group: "BOSTON"}, "everyone,public,stores-by-type"},
		{Caller{Group: "CHICAGO"}, "everyone,public"},
		{Caller{}, "public"},
	} {
		if got := names(tt.c); got != tt.want {
			t.Errorf("%+v may run %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestAudiencePolicies(t *testing.T) {
	public := Query{Name: "public", Connection: "c", SQL: "SELECT 2", APIs: []string{APIMaps}, Public: true}
	everyone := Query{Name: "everyone", Connection: "c", SQL: "SELECT 1", APIs: []string{APISQL}, Groups: []string{AllGroups}}
	s, err := NewSet([]Query{storesByType(), everyone, public})
	if err != nil {
		t.Fatal(err)
	}
	sources := func(key string) string {
		p, err := s.Policy(key)
		if err != nil {
			return err.Error()
		}
		var out []string
		for _, g := range p.Grants {
			out = append(out, g.Source)
		}
		return strings.Join(out, " | ") + " apis " + strings.Join(p.AllowedAPIs, ",")
	}
	boston := AudienceKey(Caller{Group: "BOSTON"})
	// Sorted by connection (c, carto_dw), then source.
	if got, want := sources(boston), "SELECT 1 | SELECT * FROM `carto-demo-data`.demo_tables.retail_stores\nWHERE city = @city AND storetype = @storetype -- not @this\nLIMIT @n apis maps,sql"; got != want {
		t.Errorf("BOSTON's query token: %q, want %q", got, want)
	}
	if got := sources(AudienceKey(Caller{Group: "CHICAGO"})); got != "SELECT 1 apis sql" {
		t.Errorf("CHICAGO's query token: %q", got)
	}
	if got := sources(AudienceKey(Caller{})); got != "SELECT 2 apis maps" {
		t.Errorf("the public query token: %q", got)
	}
	if _, err := s.Policy("BOSTON"); !errors.Is(err, ErrNoQueries) {
		t.Errorf("a group's own key gave a query policy: %v", err)
	}
	// No group name can be a query audience's key: a key holds a control
	// character, which no group may (its SQL literal is refused).
	if !IsAudienceKey(boston) || IsAudienceKey("queries/BOSTON") || DescribeKey(boston) != "queries/BOSTON" {
		t.Errorf("key %q: audience %v, described %q", boston, IsAudienceKey(boston), DescribeKey(boston))
	}
	only := Query{Name: "only", Connection: "c", SQL: "SELECT 3", APIs: []string{APISQL}, Groups: []string{"BOSTON"}}
	s2, _ := NewSet([]Query{only})
	if _, err := s2.Policy(AudienceKey(Caller{Group: "CHICAGO"})); !errors.Is(err, ErrNoQueries) {
		t.Errorf("an audience without queries got a policy: %v", err)
	}
}

func TestBindClaim(t *testing.T) {
	s, err := NewSet([]Query{{Name: "tenant-stores", Connection: "c", SQL: "SELECT * FROM t WHERE tenant = @tenant", APIs: []string{APISQL},
		Groups: []string{AllGroups}, Params: []Param{{Name: "tenant", Bind: BindClaim + "tenant_id"}}}})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := s.Get("tenant-stores")
	run, err := q.Bind(Caller{Group: "BOSTON", Claims: map[string]string{"tenant_id": "acme-7"}}, nil)
	if err != nil || run.Params["tenant"] != "acme-7" {
		t.Fatalf("Bind = %v, %v; want the claim's value", run.Params, err)
	}
	if _, err := q.Bind(Caller{Group: "BOSTON"}, nil); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("a caller without the claim: %v, want ErrNoIdentity", err)
	}
	if _, err := q.Bind(Caller{Group: "BOSTON", Claims: map[string]string{"tenant_id": "acme-7"}}, map[string]string{"tenant": "acme-8"}); !errors.Is(err, ErrInvalidParameter) {
		t.Fatalf("the claim supplied by the caller: %v, want ErrInvalidParameter", err)
	}
}
