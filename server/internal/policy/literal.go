package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Dialect names how a data warehouse spells a SQL string literal. CARTO
// connections reach different warehouses, and a literal that is safe in one can
// break out of the quotes in another, so every connection declares one.
type Dialect string

// Dialects with a literal renderer.
const (
	// BigQuery (CARTO Data Warehouse, carto_dw): backslash escapes inside single
	// quotes; a doubled quote is not an escape there.
	BigQuery Dialect = "bigquery"
	// Snowflake, Databricks and Redshift treat a backslash inside single quotes
	// as an escape too, so they share BigQuery's rendering.
	Snowflake  Dialect = "snowflake"
	Databricks Dialect = "databricks"
	Redshift   Dialect = "redshift"
	// PostgreSQL: an E'...' escape string, whose meaning does not depend on the
	// server's standard_conforming_strings setting.
	Postgres Dialect = "postgres"
)

// Dialects lists the known dialects, for validation messages.
var Dialects = []Dialect{BigQuery, Snowflake, Databricks, Redshift, Postgres}

// ErrUnsafeValue reports a value that cannot be a group literal: invalid UTF-8
// or a control character. Such values are refused rather than escaped, because
// no legitimate group name contains them.
var ErrUnsafeValue = errors.New("value cannot be rendered as a SQL string literal")

// Valid reports whether d is a known dialect.
func (d Dialect) Valid() bool {
	for _, k := range Dialects {
		if d == k {
			return true
		}
	}
	return false
}

// Literal renders s as a SQL string literal of dialect d. The result is one
// complete literal whatever s holds: every quote and backslash in s is escaped,
// so s can never close the literal or add SQL of its own.
func Literal(d Dialect, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: invalid UTF-8", ErrUnsafeValue)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("%w: control character %U", ErrUnsafeValue, r)
		}
	}
	var prefix string
	switch d {
	case BigQuery, Snowflake, Databricks, Redshift:
	case Postgres:
		prefix = "E"
	default:
		return "", fmt.Errorf("unknown SQL dialect %q", d)
	}
	var b strings.Builder
	b.Grow(len(prefix) + len(s) + 2)
	b.WriteString(prefix)
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\', '\'':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String(), nil
}
