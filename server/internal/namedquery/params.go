package namedquery

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Type is the type of a supplied value, and of the JSON it becomes.
type Type string

// The types. A date is YYYY-MM-DD, a timestamp RFC 3339; both reach CARTO
// as strings, normalised (timestamps in UTC).
const (
	String    Type = "string"
	Integer   Type = "integer"
	Number    Type = "number"
	Boolean   Type = "boolean"
	Date      Type = "date"
	Timestamp Type = "timestamp"
)

var types = []Type{String, Integer, Number, Boolean, Date, Timestamp}

// parse reads s as a value of t, as it goes into queryParameters.
func (t Type) parse(s string) (any, error) {
	switch t {
	case String:
		return s, nil
	case Integer:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, errors.New("must be an integer")
		}
		return n, nil
	case Number:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, errors.New("must be a finite number")
		}
		return f, nil
	case Boolean:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, errors.New("must be true or false")
		}
		return b, nil
	case Date:
		d, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
		if err != nil {
			return nil, errors.New("must be a date, YYYY-MM-DD")
		}
		return d.Format(time.DateOnly), nil
	case Timestamp:
		ts, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
		if err != nil {
			return nil, errors.New("must be a timestamp, RFC 3339 (2026-12-01T09:30:00Z)")
		}
		return ts.UTC().Format(time.RFC3339Nano), nil
	}
	return nil, fmt.Errorf("unknown type %q", t)
}

// ordered reports whether t's values have an order (min and max apply).
func (t Type) ordered() bool { return t == Integer || t == Number || t == Date || t == Timestamp }

// compare orders two parsed values of an ordered type.
func compare(a, b any) int {
	switch x := a.(type) {
	case int64:
		return cmpOf(x, b.(int64))
	case float64:
		return cmpOf(x, b.(float64))
	case string: // dates and UTC timestamps order as their text
		if ta, err := time.Parse(time.RFC3339Nano, x); err == nil {
			tb, _ := time.Parse(time.RFC3339Nano, b.(string))
			return ta.Compare(tb)
		}
		return strings.Compare(x, b.(string))
	}
	return 0
}

func cmpOf[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// check reports every problem of a parameter's declaration, and compiles
// its rules.
func (p *Param) check(public bool) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !paramName.MatchString(p.Name) {
		add("%q is not a parameter name (letters, digits, _)", p.Name)
	}
	if p.Bind != "" {
		switch claim, isClaim := strings.CutPrefix(p.Bind, BindClaim); {
		case p.Bind == BindGroup, p.Bind == BindUser:
		case isClaim && claim != "" && len(claim) <= 256 && !strings.ContainsFunc(claim, unicode.IsSpace):
		default:
			add("bind %q: bind to %s, %s or %s<name> (an identity provider's string claim)", p.Bind, BindGroup, BindUser, BindClaim)
		}
		if public {
			add("a public query has no caller: it cannot bind %s", p.Bind)
		}
		if (p.Type != "" && p.Type != String) || p.Required || p.Default != nil || len(p.Allowed) > 0 || p.Pattern != "" ||
			p.Min != "" || p.Max != "" || p.MinLength != 0 || p.MaxLength != 0 {
			add("a bound parameter holds the caller's %s: it takes no type but string and no rules", p.Bind)
		}
		return errs
	}
	if !validType(p.Type) {
		add("type %q: one of %v is required", p.Type, types)
		return errs
	}
	if p.Required && p.Default != nil {
		add("required and default exclude each other")
	}
	if (p.Pattern != "" || p.MinLength != 0 || p.MaxLength != 0) && p.Type != String {
		add("pattern, min_length and max_length apply to strings only")
	}
	if (p.Min != "" || p.Max != "") && !p.Type.ordered() {
		add("min and max apply to integers, numbers, dates and timestamps only")
	}
	if p.Pattern != "" {
		re, err := regexp.Compile(`^(?:` + p.Pattern + `)$`)
		if err != nil {
			add("pattern: %v", err)
		}
		p.compiled = re
	}
	if p.MinLength < 0 || p.MaxLength < 0 || p.MaxLength > MaxMaxLength || (p.MaxLength != 0 && p.MinLength > p.MaxLength) {
		add("min_length %d and max_length %d must satisfy 0 <= min_length <= max_length <= %d", p.MinLength, p.MaxLength, MaxMaxLength)
	}
	if p.Type == String && p.MaxLength == 0 {
		p.MaxLength = DefaultMaxLength
	}
	var err error
	if p.Min != "" {
		if p.min, err = p.Type.parse(p.Min); err != nil {
			add("min %q %v", p.Min, err)
		}
	}
	if p.Max != "" {
		if p.max, err = p.Type.parse(p.Max); err != nil {
			add("max %q %v", p.Max, err)
		}
	}
	if p.min != nil && p.max != nil && compare(p.min, p.max) > 0 {
		add("min %s is above max %s", p.Min, p.Max)
	}
	if len(errs) > 0 {
		return errs
	}
	p.allowed = nil
	for _, a := range p.Allowed {
		v, err := p.value(a)
		if err != nil {
			add("allowed value %q: %v", shown(a), err)
			continue
		}
		p.allowed = append(p.allowed, v)
	}
	if p.Default != nil {
		if p.def, err = p.accept(*p.Default); err != nil {
			add("default %q: %v", shown(*p.Default), err)
		}
	}
	return errs
}

// shown cuts a configured value for a message.
func shown(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return s
	}
	return string([]rune(s)[:40]) + "…"
}

func validType(t Type) bool {
	for _, k := range types {
		if t == k {
			return true
		}
	}
	return false
}

// value reads a supplied text against every rule of p but the allowed
// values, which it checks last; the error says which rule, for the caller.
func (p *Param) value(s string) (any, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("must be valid UTF-8")
	}
	if p.Type == String {
		n := utf8.RuneCountInString(s)
		switch {
		case n > p.MaxLength:
			return nil, fmt.Errorf("must be at most %d characters long", p.MaxLength)
		case n < p.MinLength:
			return nil, fmt.Errorf("must be at least %d characters long", p.MinLength)
		case p.compiled != nil && !p.compiled.MatchString(s):
			return nil, fmt.Errorf("must match the pattern %s", p.Pattern)
		}
	}
	v, err := p.Type.parse(s)
	if err != nil {
		return nil, err
	}
	if p.min != nil && compare(v, p.min) < 0 {
		return nil, fmt.Errorf("must be at least %s", p.Min)
	}
	if p.max != nil && compare(v, p.max) > 0 {
		return nil, fmt.Errorf("must be at most %s", p.Max)
	}
	return v, nil
}

// accept reads a supplied text against all of p's rules.
func (p *Param) accept(s string) (any, error) {
	v, err := p.value(s)
	if err != nil {
		return nil, err
	}
	if len(p.allowed) > 0 {
		for _, a := range p.allowed {
			if a == v {
				return v, nil
			}
		}
		return nil, fmt.Errorf("must be one of: %s", strings.Join(p.Allowed, ", "))
	}
	return v, nil
}
