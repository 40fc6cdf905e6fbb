package namedquery

import (
	"slices"
	"strings"
)

// sqlParams returns the named parameters (@name) that sql uses, sorted and
// unique. Text inside quotes ('…', "…", with backslash escapes, and `…`
// identifiers) and comments (-- to the end of the line, /* … */) names
// none, nor do system variables (@@name).
func sqlParams(sql string) []string {
	var names []string
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(sql, i)
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			if end := strings.IndexByte(sql[i:], '\n'); end >= 0 {
				i += end + 1
			} else {
				i = len(sql)
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			if end := strings.Index(sql[i+2:], "*/"); end >= 0 {
				i += 2 + end + 2
			} else {
				i = len(sql)
			}
		case c == '@' && strings.HasPrefix(sql[i:], "@@"):
			i += 2
			for i < len(sql) && isNameByte(sql[i]) {
				i++
			}
		case c == '@':
			j := i + 1
			for j < len(sql) && isNameByte(sql[j]) {
				j++
			}
			if j > i+1 && !isDigit(sql[i+1]) {
				names = append(names, sql[i+1:j])
			}
			i = j
		default:
			i++
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// skipQuoted returns the index just past the quoted text that starts at i;
// an unterminated quote runs to the end.
func skipQuoted(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if q != '`' {
				j++
			}
		case q:
			return j + 1
		}
	}
	return len(s)
}

func isNameByte(c byte) bool {
	return c == '_' || isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
