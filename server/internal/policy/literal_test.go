package policy

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLiteral(t *testing.T) {
	tests := []struct {
		dialect Dialect
		in      string
		want    string
		wantErr error
	}{
		{BigQuery, "BOSTON", `'BOSTON'`, nil},
		{BigQuery, "NEW YORK", `'NEW YORK'`, nil},
		{BigQuery, "O'BRIEN", `'O\'BRIEN'`, nil},
		{BigQuery, `back\slash`, `'back\\slash'`, nil},
		{BigQuery, `\'`, `'\\\''`, nil},
		{BigQuery, `' OR 1=1 --`, `'\' OR 1=1 --'`, nil},
		{BigQuery, "@groupcity", `'@groupcity'`, nil},
		{BigQuery, "Zürich 東京", `'Zürich 東京'`, nil},
		{BigQuery, "", `''`, nil},
		{Snowflake, "O'BRIEN", `'O\'BRIEN'`, nil},
		{Postgres, "O'BRIEN", `E'O\'BRIEN'`, nil},
		{Postgres, `a\b`, `E'a\\b'`, nil},
		{BigQuery, "line\nbreak", "", ErrUnsafeValue},
		{BigQuery, "nul\x00", "", ErrUnsafeValue},
		{BigQuery, "del\x7f", "", ErrUnsafeValue},
		{BigQuery, "bad\xff", "", ErrUnsafeValue},
		{Dialect("mysql"), "x", "", nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.dialect)+"/"+tt.in, func(t *testing.T) {
			got, err := Literal(tt.dialect, tt.in)
			switch {
			case tt.want == "" && err == nil:
				t.Fatalf("Literal(%q) = %q, want an error", tt.in, got)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Literal(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			case tt.want != "" && (err != nil || got != tt.want):
				t.Fatalf("Literal(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// unquote reads one backslash-escaped literal from the start of s and returns
// its value and what follows it. It is an independent reader of the quoting
// rules Literal writes.
func unquote(t *testing.T, s string) (value, rest string) {
	t.Helper()
	s = strings.TrimPrefix(s, "E")
	if !strings.HasPrefix(s, "'") {
		t.Fatalf("literal %q does not start with a quote", s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) {
				t.Fatalf("dangling backslash in %q", s)
			}
			i++
			b.WriteByte(s[i])
		case '\'':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	t.Fatalf("literal %q is not terminated", s)
	return "", ""
}

// FuzzLiteral: whatever the group name, the rendered literal is exactly one
// literal that reads back as the name: nothing after the closing quote.
func FuzzLiteral(f *testing.F) {
	for _, s := range []string{"BOSTON", "O'BRIEN", `\`, `\'`, `'; DROP TABLE x; --`, "@groupcity", "''", `\\'`, "東京"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, d := range Dialects {
			lit, err := Literal(d, s)
			if err != nil {
				if !errors.Is(err, ErrUnsafeValue) {
					t.Fatalf("unexpected error %v", err)
				}
				if utf8.ValidString(s) && !strings.ContainsFunc(s, isControl) {
					t.Fatalf("Literal(%q) refused a printable value: %v", s, err)
				}
				continue
			}
			got, rest := unquote(t, lit)
			if rest != "" {
				t.Fatalf("Literal(%s, %q) = %q leaves %q outside the literal", d, s, lit, rest)
			}
			if got != s {
				t.Fatalf("Literal(%s, %q) = %q reads back as %q", d, s, lit, got)
			}
		}
	})
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }
