package client

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Session is a broker session, made by [Client.Login].
type Session struct {
	Token     string    // the session token, sent as `authorization: Bearer <token>`
	ExpiresAt time.Time // when it expires
	Group     string    // the user's group, for example BOSTON
}

// String describes s with its token redacted.
func (s Session) String() string {
	return fmt.Sprintf("client.Session{Token: %s, ExpiresAt: %s, Group: %q}", redacted(s.Token), formatTime(s.ExpiresAt), s.Group)
}

// GoString is String, so that %#v does not print the token either.
func (s Session) GoString() string { return s.String() }

// LogValue implements slog.LogValuer: the token is left out.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(slog.Time("expires_at", s.ExpiresAt), slog.String("group", s.Group))
}

// CartoToken is a CARTO API access token and what it allows
// (tokenbroker.v1.IssueCartoTokenResponse).
type CartoToken struct {
	Token       string    // send to CARTO's APIs as `Authorization: Bearer <token>`
	ExpiresAt   time.Time // when it expires at CARTO
	Group       string    // the group it was issued for
	Grants      []Grant   // the sources it may read
	AllowedAPIs []string  // the CARTO APIs it may be used with, for example maps and sql
	Referers    []string  // the origins it may be used from; empty: any
	APIBaseURL  string    // the base URL of the CARTO APIs it is valid for
}

// Grant is one source a CARTO token may read.
type Grant struct {
	ConnectionName string // the CARTO connection, for example carto_dw
	Source         string // a SQL query (send it exactly as given), a table or a wildcard
}

// String describes t with its token redacted.
func (t CartoToken) String() string {
	return fmt.Sprintf("client.CartoToken{Token: %s, ExpiresAt: %s, Group: %q, Grants: %v, AllowedAPIs: %q, Referers: %q, APIBaseURL: %q}",
		redacted(t.Token), formatTime(t.ExpiresAt), t.Group, t.Grants, t.AllowedAPIs, t.Referers, t.APIBaseURL)
}

// GoString is String, so that %#v does not print the token either.
func (t CartoToken) GoString() string { return t.String() }

// LogValue implements slog.LogValuer: the token is left out.
func (t CartoToken) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Time("expires_at", t.ExpiresAt),
		slog.String("group", t.Group),
		slog.Any("allowed_apis", t.AllowedAPIs),
		slog.String("api_base_url", t.APIBaseURL),
	)
}

func (t CartoToken) clone() CartoToken {
	t.Grants = slices.Clone(t.Grants)
	t.AllowedAPIs = slices.Clone(t.AllowedAPIs)
	t.Referers = slices.Clone(t.Referers)
	return t
}

type revokeKind int

const (
	revokeNone revokeKind = iota
	revokeSession
	revokeCarto
	revokeGroup
)

// RevokeTarget is what [Client.Revoke] revokes. Make one with
// [RevokeSession], [RevokeCartoToken] or [RevokeGroup]; the zero value is
// refused.
type RevokeTarget struct {
	kind  revokeKind
	value string
}

// RevokeSession targets the client's own session (a logout).
func RevokeSession() RevokeTarget { return RevokeTarget{kind: revokeSession} }

// RevokeCartoToken targets one CARTO API token, which the broker must have
// issued to the caller's group (for a service: one of its groups; for an
// admin: any group).
func RevokeCartoToken(token string) RevokeTarget {
	return RevokeTarget{kind: revokeCarto, value: token}
}

// RevokeGroup targets every CARTO API token the broker holds for group.
// Admins only.
func RevokeGroup(group string) RevokeTarget { return RevokeTarget{kind: revokeGroup, value: group} }

// String describes t, with a CARTO token redacted.
func (t RevokeTarget) String() string {
	switch t.kind {
	case revokeSession:
		return "session"
	case revokeCarto:
		return "carto-token " + redacted(t.value)
	case revokeGroup:
		return fmt.Sprintf("group %q", t.value)
	}
	return "none"
}

// GoString is String.
func (t RevokeTarget) GoString() string { return t.String() }

// RevokeResult confirms a revocation.
type RevokeResult struct {
	// RevokedUntil is until when the revocation is recorded: the revoked
	// token's own expiry (the latest one, for a group).
	RevokedUntil time.Time
	// RevokedCount is how many CARTO tokens were deleted (0 for a session).
	RevokedCount int
}

// HeldToken describes a CARTO token the broker holds, without its value
// (tokenbroker.v1.HeldToken).
type HeldToken struct {
	Group       string    // the group it was issued for
	MaskedToken string    // all but its first 4 and last 4 characters masked
	TokenID     string    // 16 hex digits of its SHA-256, as in the broker's logs
	Policy      string    // 12 hex digits of the hash of the policy it was minted with
	Current     bool      // handed out for its group now (false: replaced, valid until it expires)
	CreatedAt   time.Time // when it was minted
	ExpiresAt   time.Time // when it expires at CARTO
}

func redacted(tok string) string {
	if tok == "" {
		return `""`
	}
	return "[redacted]"
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return t.Format(time.RFC3339)
}

// NamedQuery describes a named query the caller may run, without its SQL
// (tokenbroker.v1.NamedQuery).
type NamedQuery struct {
	Name       string           // as Query and QueryGeoJSON take it
	APIs       []string         // how it is served: "sql" ([Client.Query]), "maps" ([Client.QueryGeoJSON])
	Public     bool             // it runs without credentials
	Parameters []QueryParameter // in declaration order
}

// Serves reports whether q is served through api ("sql" or "maps").
func (q NamedQuery) Serves(api string) bool { return slices.Contains(q.APIs, api) }

// QueryParameter describes a parameter of a named query
// (tokenbroker.v1.QueryParameter). A parameter with BoundTo set is filled in
// by the broker from the caller's identity and must not be supplied; the
// others are supplied, as text, in the params of [Client.Query].
type QueryParameter struct {
	Name    string
	BoundTo string // "group", "user" or "claim:<name>"; empty when the caller supplies it
	// Type of a supplied value: string, integer, number, boolean, date
	// (YYYY-MM-DD) or timestamp (RFC 3339).
	Type      string
	Required  bool     // a value must be supplied
	Default   string   // the value used when none is supplied; empty: none
	Allowed   []string // the values allowed; empty: any of the type
	Pattern   string   // a regular expression (RE2) a string value must match whole; empty: none
	Min, Max  string   // bounds of an integer, number, date or timestamp value; empty: none
	MinLength int      // bounds of a string value's length in characters; 0: none
	MaxLength int
}

// QueryColumn is a column of a query's result.
type QueryColumn struct {
	Name string
	Type string // as CARTO reports it: string, number, boolean, date, geography…
}

// QueryResult holds the rows of a named query ([Client.Query]).
type QueryResult struct {
	// Columns in the query's order.
	Columns []QueryColumn
	// Rows, each column name to value, with the types of encoding/json's
	// decoding into any: string, float64 (every number), bool, nil,
	// map[string]any (a geography is a GeoJSON geometry) and []any.
	Rows []map[string]any
}
