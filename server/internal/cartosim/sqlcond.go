package cartosim

import (
	"strconv"
	"strings"
)

// condition reads one WHERE condition: col = v, col != v (or <>), or
// col IN (v, ...).
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

// operand reads the right-hand side of a condition: a string or number
// literal (a number may be negated) or a named @parameter.
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
