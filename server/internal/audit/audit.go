// Package audit writes one structured event per security-relevant action of
// the broker: each login (whatever its outcome), issuance (cache hit or mint),
// revocation and listing, saying who, for which group, from where, and the
// outcome. Events never carry a password, a secret or a whole token: tokens
// appear as fingerprints. Every field is cut to MaxField bytes.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"unicode/utf8"
)

// Action is what an event records.
type Action string

// Actions.
const (
	ActionLogin  Action = "login"
	ActionIssue  Action = "issue"  // a CARTO token handed out
	ActionRevoke Action = "revoke" // a session, a CARTO token or a group's tokens
	ActionList   Action = "list"   // the CARTO tokens held
	ActionQuery  Action = "query"  // a named query run (Detail: its name)
)

// Outcome is how an action ended, from the gRPC code answered.
type Outcome string

// Outcomes.
const (
	OutcomeSuccess Outcome = "success"
	// OutcomeFailure: unauthenticated (bad credentials or token).
	OutcomeFailure Outcome = "failure"
	// OutcomeDenied: permission denied, not found, or resource exhausted (a
	// lockout included).
	OutcomeDenied Outcome = "denied"
	// OutcomeInvalid: a malformed request.
	OutcomeInvalid Outcome = "invalid"
	// OutcomeError: anything else, such as CARTO or the store failing.
	OutcomeError Outcome = "error"
)

// Event is one audited action.
type Event struct {
	Action  Action
	Outcome Outcome
	Code    string // the gRPC code answered
	Kind    string // user, idp, service; empty when the caller is unknown
	Subject string // username, IdP subject or service name (the attempted username for a failed login)
	Group   string
	Addr    string // the client's address
	// Detail qualifies the action: hit or mint for an issuance; session,
	// carto_token or group for a revocation; shed for a login refused
	// unchecked because too many were in progress.
	Detail string
	// Token is the fingerprint of the token concerned (Fingerprint).
	Token string
	Count int // tokens revoked or listed
}

// Logger writes audit events.
type Logger struct{ l *slog.Logger }

// New returns a Logger writing to h.
func New(h slog.Handler) *Logger { return &Logger{l: slog.New(h)} }

// Discard is a Logger that writes nothing.
func Discard() *Logger { return New(slog.DiscardHandler) }

// Log writes e.
func (a *Logger) Log(ctx context.Context, e Event) {
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs,
		slog.String("action", truncate(string(e.Action))),
		slog.String("outcome", truncate(string(e.Outcome))),
		slog.String("code", truncate(e.Code)),
	)
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, truncate(v)))
		}
	}
	add("kind", e.Kind)
	add("subject", e.Subject)
	add("group", e.Group)
	add("addr", e.Addr)
	add("detail", e.Detail)
	add("token", e.Token)
	if e.Count > 0 {
		attrs = append(attrs, slog.Int("count", e.Count))
	}
	// One empty-key group, which handlers inline: the record holds a single
	// attribute instead of growing its list (an event per issuance is on
	// the hot path).
	a.l.LogAttrs(ctx, slog.LevelInfo, "audit", slog.Attr{Value: slog.GroupValue(attrs...)})
}

// MaxField bounds, in bytes, each string of an event as written: a field
// can hold what a caller sent (an attempted username, a group name), and an
// audit line must stay small whatever that was.
const MaxField = 256

// truncate cuts s to MaxField bytes, on a character boundary, and says how
// long it was.
func truncate(s string) string {
	if len(s) <= MaxField {
		return s
	}
	cut := MaxField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(truncated, %d bytes)", s[:cut], len(s))
}

// Fingerprint identifies a token in logs without revealing it: the first 16
// hex digits of its SHA-256.
func Fingerprint(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}
