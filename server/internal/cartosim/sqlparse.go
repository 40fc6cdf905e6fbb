package cartosim

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds the tokenizer and parser of the small SQL subset the
// emulator executes:
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

type tokKind uint8

const (
	tkEOF    tokKind = iota
	tkIdent          // bare identifier or keyword
	tkQuoted         // `backtick-quoted` identifier or path
	tkString         // string literal, text is the decoded value
	tkNumber         // numeric literal, text as written
	tkParam          // @name, text is the name
	tkSymbol         // punctuation and operators
)

type token struct {
	kind     tokKind
	text     string
	pos, end int // byte offsets in the source
}

type lexer struct {
	src string
	pos int
}

// tokenize splits src into tokens, the last one being tkEOF.
func tokenize(src string) ([]token, error) {
	l := &lexer{src: src}
	var toks []token
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tkEOF {
			return toks, nil
		}
	}
}

// where renders a byte offset as BigQuery does in its errors: [line:column].
func where(src string, pos int) string {
	line, col := 1, 1
	for i, r := range src {
		if i >= pos {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("[%d:%d]", line, col)
}

func isIdentStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (l *lexer) peekByte(off int) byte {
	if l.pos+off < len(l.src) {
		return l.src[l.pos+off]
	}
	return 0
}

// skipSpace skips whitespace and the three BigQuery comment forms. Comments
// matter: some clients prepend one to defeat the CDN cache.
func (l *lexer) skipSpace() error {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case c == '#' || (c == '-' && l.peekByte(1) == '-'):
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		case c == '/' && l.peekByte(1) == '*':
			end := strings.Index(l.src[l.pos+2:], "*/")
			if end < 0 {
				return badSQL("Syntax error: Unclosed comment at %s", where(l.src, l.pos))
			}
			l.pos += 2 + end + 2
		default:
			return nil
		}
	}
	return nil
}

func (l *lexer) next() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tkEOF, pos: start, end: start}, nil
	}
	tok := func(k tokKind, text string) (token, error) {
		return token{kind: k, text: text, pos: start, end: l.pos}, nil
	}
	c := l.src[l.pos]
	switch {
	case (c == 'E' || c == 'e') && l.peekByte(1) == '\'':
		// PostgreSQL escape string E'...': same escapes, plus '' for a quote.
		l.pos++
		s, err := l.stringLit('\'', true)
		if err != nil {
			return token{}, err
		}
		return tok(tkString, s)
	case isIdentStart(c):
		for l.pos < len(l.src) && isIdentPart(l.src[l.pos]) {
			l.pos++
		}
		return tok(tkIdent, l.src[start:l.pos])
	case c == '`':
		end := strings.IndexAny(l.src[l.pos+1:], "`\n\r")
		if end < 0 || l.src[l.pos+1+end] != '`' {
			return token{}, badSQL("Syntax error: Unclosed identifier literal at %s", where(l.src, start))
		}
		name := l.src[l.pos+1 : l.pos+1+end]
		l.pos += end + 2
		if name == "" {
			return token{}, badSQL("Syntax error: Invalid empty identifier at %s", where(l.src, start))
		}
		return tok(tkQuoted, name)
	case c == '\'' || c == '"':
		s, err := l.stringLit(c, false)
		if err != nil {
			return token{}, err
		}
		return tok(tkString, s)
	case isDigit(c) || (c == '.' && isDigit(l.peekByte(1))):
		for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
			l.pos++
		}
		if l.peekByte(0) == '.' && isDigit(l.peekByte(1)) {
			l.pos++
			for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
				l.pos++
			}
		}
		if e := l.peekByte(0); e == 'e' || e == 'E' {
			off := 1
			if s := l.peekByte(1); s == '+' || s == '-' {
				off = 2
			}
			if isDigit(l.peekByte(off)) {
				l.pos += off
				for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
					l.pos++
				}
			}
		}
		return tok(tkNumber, l.src[start:l.pos])
	case c == '@':
		l.pos++
		if l.peekByte(0) == '@' {
			return token{}, unsupported("@@system variables are")
		}
		if !isIdentStart(l.peekByte(0)) {
			return token{}, badSQL("Syntax error: Expected a parameter name after @ at %s", where(l.src, start))
		}
		for l.pos < len(l.src) && isIdentPart(l.src[l.pos]) {
			l.pos++
		}
		return tok(tkParam, l.src[start+1:l.pos])
	}
	for _, op := range []string{"!=", "<>", "<=", ">=", "||"} {
		if strings.HasPrefix(l.src[l.pos:], op) {
			l.pos += 2
			return tok(tkSymbol, op)
		}
	}
	if strings.IndexByte("*,()=.-;+/<>[]{}|&%~^:", c) >= 0 {
		l.pos++
		return tok(tkSymbol, string(c))
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return token{}, badSQL("Syntax error: Illegal input character %q at %s", r, where(l.src, start))
}

// stringLit reads a quoted string starting at the opening quote and returns
// its decoded value. Escapes follow BigQuery; eMode adds PostgreSQL's ”.
func (l *lexer) stringLit(q byte, eMode bool) (string, error) {
	start := l.pos
	l.pos++
	if !eMode && l.peekByte(0) == q && l.peekByte(1) == q {
		return "", unsupported("triple-quoted string literals are")
	}
	unclosed := func() error {
		return badSQL("Syntax error: Unclosed string literal at %s", where(l.src, start))
	}
	var b strings.Builder
	for {
		if l.pos >= len(l.src) {
			return "", unclosed()
		}
		c := l.src[l.pos]
		switch {
		case c == q:
			if eMode && l.peekByte(1) == q {
				b.WriteByte(q)
				l.pos += 2
				continue
			}
			l.pos++
			if n := l.peekByte(0); n == '\'' || n == '"' {
				return "", badSQL("Syntax error: concatenated string literals must be separated by whitespace or comments at %s", where(l.src, l.pos))
			}
			s := b.String()
			if !utf8.ValidString(s) {
				return "", badSQL("Syntax error: string literal at %s is not valid UTF-8", where(l.src, start))
			}
			return s, nil
		case c == '\n' || c == '\r':
			// BigQuery only allows raw newlines in triple-quoted strings.
			return "", unclosed()
		case c == '\\':
			if err := l.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
}

// escape decodes one backslash escape at l.pos into b.
func (l *lexer) escape(b *strings.Builder) error {
	at := l.pos
	l.pos++
	if l.pos >= len(l.src) {
		return badSQL("Syntax error: Unclosed string literal at %s", where(l.src, at))
	}
	e := l.src[l.pos]
	l.pos++
	if v, ok := simpleEscape(e); ok {
		b.WriteByte(v)
		return nil
	}
	hex := func(n int) (uint64, error) {
		if l.pos+n > len(l.src) {
			return 0, badSQL("Syntax error: Illegal escape sequence at %s", where(l.src, at))
		}
		v, err := strconv.ParseUint(l.src[l.pos:l.pos+n], 16, 32)
		if err != nil {
			return 0, badSQL("Syntax error: Illegal escape sequence at %s", where(l.src, at))
		}
		l.pos += n
		return v, nil
	}
	switch e {
	case 'x', 'X':
		v, err := hex(2)
		if err != nil {
			return err
		}
		b.WriteByte(byte(v))
	case 'u', 'U':
		n := 4
		if e == 'U' {
			n = 8
		}
		v, err := hex(n)
		if err != nil {
			return err
		}
		if v > unicode.MaxRune || (v >= 0xD800 && v <= 0xDFFF) {
			return badSQL("Syntax error: Illegal escape sequence: invalid code point at %s", where(l.src, at))
		}
		b.WriteRune(rune(v))
	default:
		return badSQL("Syntax error: Illegal escape sequence: \\%c at %s", e, where(l.src, at))
	}
	return nil
}

// simpleEscape decodes the one-character escapes of BigQuery literals.
func simpleEscape(e byte) (byte, bool) {
	switch e {
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'a':
		return '\a', true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'v':
		return '\v', true
	case '\\', '\'', '"', '`', '?':
		return e, true
	}
	return 0, false
}

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

func (p *parser) parse() (*selectStmt, error) {
	st := &selectStmt{Limit: -1}
	first := p.peek()
	if !p.acceptKeyword("SELECT") {
		switch {
		case isKeyword(first, "WITH"):
			return nil, unsupported("WITH clauses are")
		case first.kind == tkIdent && !isKeyword(first, "FROM"):
			return nil, unsupported("only SELECT statements are supported; " + strings.ToUpper(first.text) + " is")
		}
		return nil, p.unexpected(first)
	}
	// Select list.
	if isKeyword(p.peek(), "DISTINCT") || isKeyword(p.peek(), "ALL") {
		return nil, unsupported("SELECT " + strings.ToUpper(p.peek().text) + " is")
	}
	if isSymbol(p.peek(), "*") {
		p.advance()
		if isSymbol(p.peek(), ",") {
			return nil, unsupported("mixing * with other columns is")
		}
	} else {
		for {
			col, err := p.column()
			if err != nil {
				return nil, err
			}
			st.Columns = append(st.Columns, col)
			if t := p.peek(); isSymbol(t, "(") {
				return nil, unsupported("functions are")
			} else if isKeyword(t, "AS") || (t.kind == tkIdent && !isReserved(t.text)) || t.kind == tkQuoted {
				return nil, unsupported("column aliases are")
			} else if isSymbol(t, ".") {
				return nil, unsupported("qualified column names are")
			} else if t.kind == tkSymbol && strings.Contains("+-*/|", t.text[:1]) {
				return nil, unsupported("expressions are")
			}
			if !isSymbol(p.peek(), ",") {
				break
			}
			p.advance()
		}
	}
	if !p.acceptKeyword("FROM") {
		return nil, p.unexpected(p.peek())
	}
	tbl, err := p.tablePath()
	if err != nil {
		return nil, err
	}
	st.Table = tbl
	switch t := p.peek(); {
	case isSymbol(t, ","), isKeyword(t, "JOIN"), isKeyword(t, "INNER"), isKeyword(t, "LEFT"),
		isKeyword(t, "RIGHT"), isKeyword(t, "FULL"), isKeyword(t, "CROSS"):
		return nil, unsupported("joins are")
	case isKeyword(t, "AS"), t.kind == tkQuoted, t.kind == tkIdent && !isReserved(t.text):
		return nil, unsupported("table aliases are")
	}
	if p.acceptKeyword("WHERE") {
		for {
			c, err := p.condition()
			if err != nil {
				return nil, err
			}
			st.Where = append(st.Where, c)
			if isKeyword(p.peek(), "OR") {
				return nil, unsupported("OR is; combine conditions with AND, which is")
			}
			if !p.acceptKeyword("AND") {
				break
			}
		}
	}
	if isKeyword(p.peek(), "GROUP") || isKeyword(p.peek(), "HAVING") {
		return nil, unsupported(strings.ToUpper(p.peek().text) + " is")
	}
	if p.acceptKeyword("ORDER") {
		if !p.acceptKeyword("BY") {
			return nil, p.unexpected(p.peek())
		}
		col, err := p.column()
		if err != nil {
			return nil, err
		}
		st.OrderBy = col
		if p.acceptKeyword("DESC") {
			st.Desc = true
		} else {
			p.acceptKeyword("ASC")
		}
		if isSymbol(p.peek(), ",") {
			return nil, unsupported("ordering by more than one column is")
		}
	}
	if p.acceptKeyword("LIMIT") {
		t := p.advance()
		if t.kind != tkNumber {
			return nil, badSQL("Syntax error: LIMIT expects an integer literal at %s", where(p.src, t.pos))
		}
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, badSQL("Syntax error: LIMIT expects an integer literal at %s", where(p.src, t.pos))
		}
		st.Limit = n
		if isKeyword(p.peek(), "OFFSET") {
			return nil, unsupported("OFFSET is")
		}
	}
	if isKeyword(p.peek(), "UNION") || isKeyword(p.peek(), "EXCEPT") || isKeyword(p.peek(), "INTERSECT") {
		return nil, unsupported("set operations are")
	}
	if isSymbol(p.peek(), ";") {
		p.advance()
	}
	if t := p.peek(); t.kind != tkEOF {
		return nil, p.unexpected(t)
	}
	return st, nil
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

func (p *parser) condition() (condition, error) {
	col, err := p.column()
	if err != nil {
		return condition{}, err
	}
	c := condition{Column: col}
	op := p.advance()
	switch {
	case isSymbol(op, "="):
		c.Op = "="
	case isSymbol(op, "!="), isSymbol(op, "<>"):
		c.Op = "!="
	case isKeyword(op, "IN"):
		c.Op = "IN"
	case isKeyword(op, "NOT") && isKeyword(p.peek(), "IN"):
		return condition{}, unsupported("NOT IN is")
	case op.kind == tkSymbol && strings.ContainsAny(op.text, "<>"):
		return condition{}, unsupported("comparison operator " + op.text + " is; only =, != and IN are")
	case isKeyword(op, "LIKE"), isKeyword(op, "IS"), isKeyword(op, "BETWEEN"), isKeyword(op, "NOT"):
		return condition{}, unsupported("operator " + strings.ToUpper(op.text) + " is; only =, != and IN are")
	case isSymbol(op, "("):
		return condition{}, unsupported("functions are")
	default:
		return condition{}, p.unexpected(op)
	}
	if c.Op != "IN" {
		v, err := p.operand()
		if err != nil {
			return condition{}, err
		}
		c.Values = []operand{v}
		return c, nil
	}
	if t := p.advance(); !isSymbol(t, "(") {
		return condition{}, p.unexpected(t)
	}
	if isKeyword(p.peek(), "SELECT") {
		return condition{}, unsupported("subqueries are")
	}
	if isSymbol(p.peek(), ")") {
		return condition{}, badSQL("Syntax error: Empty IN list at %s", where(p.src, p.peek().pos))
	}
	for {
		v, err := p.operand()
		if err != nil {
			return condition{}, err
		}
		c.Values = append(c.Values, v)
		t := p.advance()
		if isSymbol(t, ")") {
			return c, nil
		}
		if !isSymbol(t, ",") {
			return condition{}, p.unexpected(t)
		}
	}
}

func (p *parser) operand() (operand, error) {
	t := p.advance()
	neg := false
	if isSymbol(t, "-") && p.peek().kind == tkNumber {
		neg = true
		t = p.advance()
	}
	switch t.kind {
	case tkString:
		return operand{Kind: opString, Str: t.text}, nil
	case tkNumber:
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return operand{}, badSQL("Syntax error: Invalid numeric literal %s at %s", t.text, where(p.src, t.pos))
		}
		if neg {
			f = -f
		}
		return operand{Kind: opNumber, Num: f}, nil
	case tkParam:
		return operand{Kind: opParam, Param: t.text}, nil
	case tkIdent:
		switch strings.ToUpper(t.text) {
		case "NULL", "TRUE", "FALSE":
			return operand{}, unsupported("NULL and boolean literals are")
		}
		if !isReserved(t.text) {
			return operand{}, unsupported("comparing two columns is; the right-hand side must be a literal or @parameter, which is")
		}
	case tkQuoted:
		return operand{}, unsupported("comparing two columns is; the right-hand side must be a literal or @parameter, which is")
	}
	return operand{}, p.unexpected(t)
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
