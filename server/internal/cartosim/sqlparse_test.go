package cartosim

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	table := []string{"carto-demo-data", "demo_tables", "retail_stores"}
	tests := []struct {
		q    string
		want selectStmt
	}{
		{"SELECT * FROM `carto-demo-data`.demo_tables.retail_stores",
			selectStmt{Table: table, Limit: -1}},
		{"select * from carto-demo-data.demo_tables.retail_stores",
			selectStmt{Table: table, Limit: -1}},
		{"SELECT * FROM `carto-demo-data.demo_tables.retail_stores`",
			selectStmt{Table: table, Limit: -1}},
		{"SELECT * FROM `carto-demo-data`.`demo_tables`.`retail_stores`",
			selectStmt{Table: table, Limit: -1}},
		{"SeLeCt city, `zip` FrOm p.d.t WhErE city = 'A' aNd zip != \"B\" AND cartodb_id IN (1, -2.5, 3e2, @x) OrDeR bY revenue dEsC LiMiT 10;",
			selectStmt{
				Columns: []string{"city", "zip"}, Table: []string{"p", "d", "t"},
				Where: []condition{
					{"city", "=", []operand{{Kind: opString, Str: "A"}}},
					{"zip", "!=", []operand{{Kind: opString, Str: "B"}}},
					{"cartodb_id", "IN", []operand{{Kind: opNumber, Num: 1}, {Kind: opNumber, Num: -2.5}, {Kind: opNumber, Num: 300}, {Kind: opParam, Param: "x"}}},
				},
				OrderBy: "revenue", Desc: true, Limit: 10,
			}},
		{"SELECT * FROM p.d.t WHERE a <> @p ORDER BY a ASC",
			selectStmt{Table: []string{"p", "d", "t"}, Where: []condition{{"a", "!=", []operand{{Kind: opParam, Param: "p"}}}}, OrderBy: "a", Limit: -1}},
		{"# comment\nSELECT /* inline */ * FROM p.d.t -- trailing",
			selectStmt{Table: []string{"p", "d", "t"}, Limit: -1}},
		{"SELECT * FROM my-project-2.d.t",
			selectStmt{Table: []string{"my-project-2", "d", "t"}, Limit: -1}},
	}
	for _, tc := range tests {
		got, err := parseSQL(tc.q)
		if err != nil {
			t.Errorf("parse %q: %v", tc.q, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("parse %q:\n got %+v\nwant %+v", tc.q, *got, tc.want)
		}
	}
}

func TestStringLiterals(t *testing.T) {
	tests := []struct{ lit, want string }{
		{`'O\'FALLON'`, "O'FALLON"},
		{`"O'FALLON"`, "O'FALLON"},
		{`"say \"hi\""`, `say "hi"`},
		{`'a\\b'`, `a\b`},
		{`'\n\r\t'`, "\n\r\t"},
		{`'\x41\X42'`, "AB"},
		{`'\u00e9\U0001F600'`, "é😀"},
		{`'\a\b\f\v\?\` + "`" + `'`, "\a\b\f\v?`"},
		{`E'O\'FALLON'`, "O'FALLON"},
		{`e'O''FALLON'`, "O'FALLON"},
		{`''`, ""},
		{`'naïve'`, "naïve"},
	}
	for _, tc := range tests {
		st, err := parseSQL("SELECT * FROM p.d.t WHERE c = " + tc.lit)
		if err != nil {
			t.Errorf("%s: %v", tc.lit, err)
			continue
		}
		if got := st.Where[0].Values[0].Str; got != tc.want {
			t.Errorf("%s = %q, want %q", tc.lit, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const pre = "SELECT * FROM p.d.t WHERE c = "
	tests := []struct{ q, errSub string }{
		{pre + "'abc", "Unclosed string literal"},
		{pre + `"abc`, "Unclosed string literal"},
		{pre + "'ab\ncd'", "Unclosed string literal"},
		{pre + `'abc\'`, "Unclosed string literal"},
		{pre + `'\q'`, `Illegal escape sequence: \q`},
		{pre + `'\x4'`, "Illegal escape sequence"},
		{pre + `'\uD800'`, "invalid code point"},
		{pre + `'\U00110000'`, "invalid code point"},
		{pre + `'\xff'`, "not valid UTF-8"},
		{pre + `'O''FALLON'`, "concatenated string literals"},
		{pre + `'''x'''`, "triple-quoted"},
		{pre + "@", "parameter name"},
		{pre + "@@x", "system variables"},
		{pre + "NULL", "NULL and boolean literals"},
		{pre + "other_col", "comparing two columns"},
		{"SELECT * FROM p.d.t WHERE c IN ()", "Empty IN list"},
		{"SELECT * FROM p.d.t WHERE c NOT IN (1)", "NOT IN"},
		{"SELECT * FROM p.d.t WHERE c LIKE 'x'", "LIKE"},
		{"SELECT * FROM p.d.t WHERE c IS NULL", "IS"},
		{"SELECT * FROM p.d.t WHERE c >= 1", "comparison operator >="},
		{"SELECT * FROM p.d.t WHERE c = 1 OR d = 2", "OR is"},
		{"SELECT * FROM p.d.t WHERE c IN (SELECT x FROM y)", "subqueries"},
		{"SELECT * FROM (SELECT 1)", "subqueries"},
		{"SELECT DISTINCT c FROM p.d.t", "SELECT DISTINCT"},
		{"SELECT *, c FROM p.d.t", "mixing *"},
		{"SELECT c AS d FROM p.d.t", "column aliases"},
		{"SELECT c d FROM p.d.t", "column aliases"},
		{"SELECT t.c FROM p.d.t", "qualified column"},
		{"SELECT ST_X(geom) FROM p.d.t", "functions"},
		{"SELECT a + 1 FROM p.d.t", "expressions"},
		{"SELECT 'x' FROM p.d.t", "literals in the select list"},
		{"SELECT * FROM p.d.t t", "table aliases"},
		{"SELECT * FROM p.d.t, q.r.s", "joins"},
		{"SELECT * FROM p.d.t LEFT JOIN q ON 1 = 1", "joins"},
		{"SELECT * FROM p.d.t GROUP BY c", "GROUP"},
		{"SELECT * FROM p.d.t ORDER BY a, b", "more than one column"},
		{"SELECT * FROM p.d.t ORDER a", "Unexpected"},
		{"SELECT * FROM p.d.t LIMIT x", "LIMIT expects an integer"},
		{"SELECT * FROM p.d.t LIMIT 1.5", "LIMIT expects an integer"},
		{"SELECT * FROM p.d.t LIMIT 5 OFFSET 2", "OFFSET"},
		{"SELECT * FROM p.d.t UNION ALL SELECT * FROM p.d.t", "set operations"},
		{"SELECT * FROM p.d.t; SELECT 1", "Unexpected keyword SELECT"},
		{"WITH x AS (SELECT 1) SELECT * FROM x", "WITH"},
		{"DELETE FROM p.d.t", "only SELECT"},
		{"", "Unexpected end of input"},
		{"SELECT", "Unexpected end of input"},
		{"SELECT * FROM", "Unexpected end of input"},
		{"SELECT * FROM ``", "empty identifier"},
		{"SELECT * FROM `p..t`", "Invalid table name"},
		{"SELECT * FROM `p.d.t", "Unclosed identifier"},
		{"SELECT * FROM p.d.t /* open", "Unclosed comment"},
		{"SELECT * FROM p.d.t WHERE c = 1e999", "Invalid numeric literal"},
		{"SELECT * FROM p.d.t WHERE c = $1", "Illegal input character"},
		{"SELECT from FROM p.d.t", "Unexpected keyword FROM"},
	}
	for _, tc := range tests {
		_, err := parseSQL(tc.q)
		if err == nil {
			t.Errorf("%q parsed", tc.q)
			continue
		}
		se, ok := err.(*sqlError)
		if !ok || se.status != 400 {
			t.Errorf("%q: error %T %v is not a 400 sqlError", tc.q, err, err)
		}
		if !strings.Contains(err.Error(), tc.errSub) {
			t.Errorf("%q: error %q does not contain %q", tc.q, err, tc.errSub)
		}
	}
	// Positions are reported as BigQuery does: [line:column].
	if _, err := parseSQL("SELECT *\nFROM p.d.t\nWHERE c = 'x"); err == nil || !strings.Contains(err.Error(), "[3:11]") {
		t.Errorf("position: %v", err)
	}
}

// FuzzParse checks that the parser never panics and that whatever it
// accepts renders back to SQL that parses to the same statement.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		bostonSQL,
		groupSQL,
		`SELECT city, zip FROM p.d.t WHERE city = 'O\'FALLON' AND zip IN ("1", '2') ORDER BY zip DESC LIMIT 3`,
		`SELECT * FROM p.d.t WHERE c = E'a''b\n' AND d != -1.5e3`,
		"SELECT * FROM `carto-demo-data.demo_tables.retail_stores` -- c\n;",
		`SELECT * FROM p.d.t WHERE c = '\u00e9\x41\U0001F600'`,
		"SELECT * FROM p.d.t WHERE c = 'unterminated",
		"/* */ select `a b` from `x`.y WHERE `c` <> @p",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		st, err := parseSQL(q)
		if err != nil {
			if _, ok := err.(*sqlError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		text := st.String()
		again, err := parseSQL(text)
		if err != nil {
			t.Fatalf("%q rendered as %q, which does not parse: %v", q, text, err)
		}
		if !reflect.DeepEqual(st, again) {
			t.Fatalf("%q rendered as %q:\n first %+v\nsecond %+v", q, text, st, again)
		}
	})
}
