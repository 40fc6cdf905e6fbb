package cartosim

import (
	"fmt"
	"strconv"
	"strings"
)

// This file holds the parser of the small SQL subset the emulator executes
// (its tokens come from sqllex.go, its WHERE conditions are read in
// sqlcond.go, the statement it builds is in sqlstmt.go):
//
//	SELECT <* | col [, col ...]> FROM <table>
//	  [WHERE <cond> [AND <cond> ...]] [ORDER BY col [ASC|DESC]] [LIMIT n] [;]
//
// with <cond> one of `col = v`, `col != v` (or `<>`), `col IN (v, ...)` and v
// a string literal, a number or a named parameter @name. Anything else is
// rejected with a 400 that names what is not supported.

// sqlError is an error answered to the client with its HTTP status.
type sqlError struct {
	status int
	msg    string
	column string // the offending column, for "Column not found"
}

func (e *sqlError) Error() string { return e.msg }

func badSQL(format string, args ...any) *sqlError {
	return &sqlError{status: 400, msg: fmt.Sprintf(format, args...)}
}

func unsupported(what string) *sqlError {
	return &sqlError{status: 400, msg: "Unsupported SQL: " + what + " not supported by the emulator"}
}

// isReserved reports whether word is a BigQuery reserved word, which
// cannot be a bare column name.
func isReserved(word string) bool {
	switch strings.ToUpper(word) {
	case "ALL", "AND", "ANY", "AS", "ASC", "BETWEEN", "BY", "CASE", "CROSS", "DESC",
		"DISTINCT", "ELSE", "END", "EXCEPT", "EXISTS", "FALSE", "FROM", "FULL", "GROUP",
		"HAVING", "IN", "INNER", "INTERSECT", "IS", "JOIN", "LEFT", "LIKE", "LIMIT", "NOT",
		"NULL", "ON", "OR", "ORDER", "OUTER", "RIGHT", "SELECT", "THEN", "TRUE", "UNION",
		"WHEN", "WHERE", "WINDOW", "WITH", "QUALIFY":
		return true
	}
	return false
}

type parser struct {
	src  string
	toks []token
	i    int
}

// parseSQL parses q into a selectStmt or returns a *sqlError.
func parseSQL(q string) (*selectStmt, error) {
	toks, err := tokenize(q)
	if err != nil {
		return nil, err
	}
	p := &parser{src: q, toks: toks}
	return p.parse()
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) advance() token {
	t := p.toks[p.i]
	if t.kind != tkEOF {
		p.i++
	}
	return t
}

func isKeyword(t token, kw string) bool { return t.kind == tkIdent && strings.EqualFold(t.text, kw) }
func isSymbol(t token, s string) bool   { return t.kind == tkSymbol && t.text == s }

func (p *parser) acceptKeyword(kw string) bool {
	if isKeyword(p.peek(), kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) unexpected(t token) error {
	var what string
	switch t.kind {
	case tkEOF:
		what = "end of input"
	case tkIdent:
		if isReserved(t.text) {
			what = "keyword " + strings.ToUpper(t.text)
		} else {
			what = fmt.Sprintf("identifier %q", t.text)
		}
	case tkQuoted:
		what = fmt.Sprintf("identifier `%s`", t.text)
	case tkString:
		what = "string literal"
	case tkNumber:
		what = fmt.Sprintf("number %s", t.text)
	case tkParam:
		what = "query parameter @" + t.text
	default:
		what = fmt.Sprintf("%q", t.text)
	}
	return badSQL("Syntax error: Unexpected %s at %s", what, where(p.src, t.pos))
}

// parse reads one statement: the clauses in their SQL order, each refusing
// by name what the emulator does not support.
func (p *parser) parse() (*selectStmt, error) {
	st := &selectStmt{Limit: -1}
	for _, clause := range []func(*selectStmt) error{
		p.selectClause, p.fromClause, p.whereClause, p.orderByClause, p.limitClause, p.end,
	} {
		if err := clause(st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// selectClause reads SELECT and its list: * or columns.
func (p *parser) selectClause(st *selectStmt) error {
	first := p.peek()
	if !p.acceptKeyword("SELECT") {
		switch {
		case isKeyword(first, "WITH"):
			return unsupported("WITH clauses are")
		case first.kind == tkIdent && !isKeyword(first, "FROM"):
			return unsupported("only SELECT statements are supported; " + strings.ToUpper(first.text) + " is")
		}
		return p.unexpected(first)
	}
	if isKeyword(p.peek(), "DISTINCT") || isKeyword(p.peek(), "ALL") {
		return unsupported("SELECT " + strings.ToUpper(p.peek().text) + " is")
	}
	if isSymbol(p.peek(), "*") {
		p.advance()
		if isSymbol(p.peek(), ",") {
			return unsupported("mixing * with other columns is")
		}
		return nil
	}
	for {
		col, err := p.column()
		if err != nil {
			return err
		}
		st.Columns = append(st.Columns, col)
		if t := p.peek(); isSymbol(t, "(") {
			return unsupported("functions are")
		} else if isKeyword(t, "AS") || (t.kind == tkIdent && !isReserved(t.text)) || t.kind == tkQuoted {
			return unsupported("column aliases are")
		} else if isSymbol(t, ".") {
			return unsupported("qualified column names are")
		} else if t.kind == tkSymbol && strings.Contains("+-*/|", t.text[:1]) {
			return unsupported("expressions are")
		}
		if !isSymbol(p.peek(), ",") {
			return nil
		}
		p.advance()
	}
}

// fromClause reads FROM and one table, without joins or an alias.
func (p *parser) fromClause(st *selectStmt) error {
	if !p.acceptKeyword("FROM") {
		return p.unexpected(p.peek())
	}
	tbl, err := p.tablePath()
	if err != nil {
		return err
	}
	st.Table = tbl
	switch t := p.peek(); {
	case isSymbol(t, ","), isKeyword(t, "JOIN"), isKeyword(t, "INNER"), isKeyword(t, "LEFT"),
		isKeyword(t, "RIGHT"), isKeyword(t, "FULL"), isKeyword(t, "CROSS"):
		return unsupported("joins are")
	case isKeyword(t, "AS"), t.kind == tkQuoted, t.kind == tkIdent && !isReserved(t.text):
		return unsupported("table aliases are")
	}
	return nil
}

// whereClause reads an optional WHERE of conditions joined by AND, and
// refuses the GROUP BY or HAVING that may follow.
func (p *parser) whereClause(st *selectStmt) error {
	if p.acceptKeyword("WHERE") {
		for {
			c, err := p.condition()
			if err != nil {
				return err
			}
			st.Where = append(st.Where, c)
			if isKeyword(p.peek(), "OR") {
				return unsupported("OR is; combine conditions with AND, which is")
			}
			if !p.acceptKeyword("AND") {
				break
			}
		}
	}
	if isKeyword(p.peek(), "GROUP") || isKeyword(p.peek(), "HAVING") {
		return unsupported(strings.ToUpper(p.peek().text) + " is")
	}
	return nil
}

// orderByClause reads an optional ORDER BY of one column.
func (p *parser) orderByClause(st *selectStmt) error {
	if !p.acceptKeyword("ORDER") {
		return nil
	}
	if !p.acceptKeyword("BY") {
		return p.unexpected(p.peek())
	}
	col, err := p.column()
	if err != nil {
		return err
	}
	st.OrderBy = col
	if p.acceptKeyword("DESC") {
		st.Desc = true
	} else {
		p.acceptKeyword("ASC")
	}
	if isSymbol(p.peek(), ",") {
		return unsupported("ordering by more than one column is")
	}
	return nil
}

// limitClause reads an optional LIMIT of an integer literal.
func (p *parser) limitClause(st *selectStmt) error {
	if !p.acceptKeyword("LIMIT") {
		return nil
	}
	t := p.advance()
	if t.kind != tkNumber {
		return badSQL("Syntax error: LIMIT expects an integer literal at %s", where(p.src, t.pos))
	}
	n, err := strconv.ParseInt(t.text, 10, 64)
	if err != nil {
		return badSQL("Syntax error: LIMIT expects an integer literal at %s", where(p.src, t.pos))
	}
	st.Limit = n
	if isKeyword(p.peek(), "OFFSET") {
		return unsupported("OFFSET is")
	}
	return nil
}

// end accepts one optional semicolon and then only the end of the input.
func (p *parser) end(*selectStmt) error {
	if isKeyword(p.peek(), "UNION") || isKeyword(p.peek(), "EXCEPT") || isKeyword(p.peek(), "INTERSECT") {
		return unsupported("set operations are")
	}
	if isSymbol(p.peek(), ";") {
		p.advance()
	}
	if t := p.peek(); t.kind != tkEOF {
		return p.unexpected(t)
	}
	return nil
}

// column reads a column name: a bare non-reserved identifier or a
// backtick-quoted one.
func (p *parser) column() (string, error) {
	t := p.advance()
	switch {
	case t.kind == tkQuoted:
		return t.text, nil
	case t.kind == tkIdent && !isReserved(t.text):
		return t.text, nil
	case isSymbol(t, "*"):
		return "", unsupported("mixing * with other columns is")
	case t.kind == tkString || t.kind == tkNumber || t.kind == tkParam:
		return "", unsupported("literals in the select list are")
	}
	return "", p.unexpected(t)
}

// tablePath reads a dotted table path. BigQuery allows dashes in unquoted
// project names (carto-demo-data.x.y), so adjacent ident/number/'-' tokens
// with no space between them are glued into one segment.
func (p *parser) tablePath() ([]string, error) {
	var segs []string
	for {
		t := p.advance()
		switch {
		case t.kind == tkQuoted:
			for _, s := range strings.Split(t.text, ".") {
				if s == "" {
					return nil, badSQL("Syntax error: Invalid table name `%s` at %s", t.text, where(p.src, t.pos))
				}
				segs = append(segs, s)
			}
		case t.kind == tkIdent && !isReserved(t.text):
			seg := t.text
			end := t.end
			for {
				n := p.peek()
				if n.pos != end || !(gluable(n) || isSymbol(n, "-")) {
					break
				}
				if m := p.peekAt(1); isSymbol(n, "-") && (m.pos != n.end || !gluable(m)) {
					break
				}
				seg += n.text
				end = n.end
				p.advance()
			}
			segs = append(segs, seg)
		case isSymbol(t, "("):
			return nil, unsupported("subqueries are")
		default:
			return nil, p.unexpected(t)
		}
		if !isSymbol(p.peek(), ".") {
			return segs, nil
		}
		p.advance()
	}
}

// gluable reports whether t can continue a dashed project name.
func gluable(t token) bool {
	if t.kind == tkIdent {
		return true
	}
	return t.kind == tkNumber && strings.Trim(t.text, "0123456789") == ""
}
