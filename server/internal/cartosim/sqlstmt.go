package cartosim

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// operandKind says what the right-hand side of a condition is.
type operandKind uint8

const (
	opString operandKind = iota
	opNumber
	opParam
)

type operand struct {
	Kind  operandKind
	Str   string
	Num   float64
	Param string
}

type condition struct {
	Column string
	Op     string // "=", "!=" or "IN"
	Values []operand
}

// selectStmt is a parsed query. Identifiers keep their spelling; columns
// are resolved case-insensitively at execution, as BigQuery does.
type selectStmt struct {
	Columns []string // nil means *
	Table   []string // path segments, without backticks
	Where   []condition
	OrderBy string // "" when absent
	Desc    bool
	Limit   int64 // -1 when absent
}

// String renders the statement back to SQL that parses to an equal
// statement (used by the fuzz test and for debugging).
func (st *selectStmt) String() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	if st.Columns == nil {
		b.WriteString("*")
	}
	for i, c := range st.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c))
	}
	b.WriteString(" FROM ")
	for i, s := range st.Table {
		if i > 0 {
			b.WriteString(".")
		}
		b.WriteString(quoteIdent(s))
	}
	for i, c := range st.Where {
		if i == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		b.WriteString(quoteIdent(c.Column))
		if c.Op == "IN" {
			b.WriteString(" IN (")
			for j, v := range c.Values {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(v.String())
			}
			b.WriteString(")")
		} else {
			b.WriteString(" " + c.Op + " " + c.Values[0].String())
		}
	}
	if st.OrderBy != "" {
		b.WriteString(" ORDER BY " + quoteIdent(st.OrderBy))
		if st.Desc {
			b.WriteString(" DESC")
		}
	}
	if st.Limit >= 0 {
		fmt.Fprintf(&b, " LIMIT %d", st.Limit)
	}
	return b.String()
}

func quoteIdent(s string) string { return "`" + s + "`" }

func (o operand) String() string {
	switch o.Kind {
	case opNumber:
		return strconv.FormatFloat(o.Num, 'g', -1, 64)
	case opParam:
		return "@" + o.Param
	default:
		return quoteString(o.Str)
	}
}

// quoteString renders s as a single-quoted BigQuery string literal.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			switch {
			case unicode.IsPrint(r):
				b.WriteRune(r)
			case r <= 0xFFFF:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		}
	}
	b.WriteByte('\'')
	return b.String()
}
