package cartosim

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds the tokenizer of the emulator's SQL subset (see
// sqlparse.go): BigQuery's literals, comments and quoted identifiers.

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

// next reads the token at l.pos.
func (l *lexer) next() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tkEOF, pos: start, end: start}, nil
	}
	kind, text, err := l.scan(start)
	if err != nil {
		return token{}, err
	}
	return token{kind: kind, text: text, pos: start, end: l.pos}, nil
}

// scan reads the token starting at start, past any space, and returns its
// kind and text.
func (l *lexer) scan(start int) (tokKind, string, error) {
	c := l.src[l.pos]
	switch {
	case (c == 'E' || c == 'e') && l.peekByte(1) == '\'':
		// PostgreSQL escape string E'...': same escapes, plus '' for a quote.
		l.pos++
		s, err := l.stringLit('\'', true)
		return tkString, s, err
	case isIdentStart(c):
		l.skipWhile(isIdentPart)
		return tkIdent, l.src[start:l.pos], nil
	case c == '`':
		name, err := l.quotedIdent(start)
		return tkQuoted, name, err
	case c == '\'' || c == '"':
		s, err := l.stringLit(c, false)
		return tkString, s, err
	case isDigit(c) || (c == '.' && isDigit(l.peekByte(1))):
		l.number()
		return tkNumber, l.src[start:l.pos], nil
	case c == '@':
		name, err := l.param(start)
		return tkParam, name, err
	}
	for _, op := range []string{"!=", "<>", "<=", ">=", "||"} {
		if strings.HasPrefix(l.src[l.pos:], op) {
			l.pos += 2
			return tkSymbol, op, nil
		}
	}
	if strings.IndexByte("*,()=.-;+/<>[]{}|&%~^:", c) >= 0 {
		l.pos++
		return tkSymbol, string(c), nil
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return 0, "", badSQL("Syntax error: Illegal input character %q at %s", r, where(l.src, start))
}

// skipWhile advances past the bytes that satisfy ok.
func (l *lexer) skipWhile(ok func(byte) bool) {
	for l.pos < len(l.src) && ok(l.src[l.pos]) {
		l.pos++
	}
}

// quotedIdent reads a `backtick-quoted` identifier or path, on one line.
func (l *lexer) quotedIdent(start int) (string, error) {
	end := strings.IndexAny(l.src[l.pos+1:], "`\n\r")
	if end < 0 || l.src[l.pos+1+end] != '`' {
		return "", badSQL("Syntax error: Unclosed identifier literal at %s", where(l.src, start))
	}
	name := l.src[l.pos+1 : l.pos+1+end]
	l.pos += end + 2
	if name == "" {
		return "", badSQL("Syntax error: Invalid empty identifier at %s", where(l.src, start))
	}
	return name, nil
}

// number reads a numeric literal: digits, an optional fraction and an
// optional exponent.
func (l *lexer) number() {
	l.skipWhile(isDigit)
	if l.peekByte(0) == '.' && isDigit(l.peekByte(1)) {
		l.pos++
		l.skipWhile(isDigit)
	}
	if e := l.peekByte(0); e == 'e' || e == 'E' {
		off := 1
		if s := l.peekByte(1); s == '+' || s == '-' {
			off = 2
		}
		if isDigit(l.peekByte(off)) {
			l.pos += off
			l.skipWhile(isDigit)
		}
	}
}

// param reads a named parameter, @name, and returns the name.
func (l *lexer) param(start int) (string, error) {
	l.pos++
	if l.peekByte(0) == '@' {
		return "", unsupported("@@system variables are")
	}
	if !isIdentStart(l.peekByte(0)) {
		return "", badSQL("Syntax error: Expected a parameter name after @ at %s", where(l.src, start))
	}
	l.skipWhile(isIdentPart)
	return l.src[start+1 : l.pos], nil
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
