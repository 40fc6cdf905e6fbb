// Package audit writes one structured event per security-relevant action of
// the broker: each login (success or failure), issuance (cache hit or mint),
// revocation and listing, saying who, for which group, from where, and the
// outcome. Events never carry a password, a secret or a whole token: tokens
// appear as fingerprints.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
)

// Event is one audited action.
type Event struct {
	Action  string // login, issue, revoke, list
	Outcome string // success, failure (bad credentials), denied, error
	Code    string // the gRPC code answered
	Kind    string // user, idp, service; empty when the caller is unknown
	Subject string // username, IdP subject or service name (the attempted username for a failed login)
	Group   string
	Addr    string // the client's address
	// Detail qualifies the action: hit or mint for an issuance; session,
	// carto_token or group for a revocation.
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
		slog.String("action", e.Action),
		slog.String("outcome", e.Outcome),
		slog.String("code", e.Code),
	)
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
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

// Fingerprint identifies a token in logs without revealing it: the first 16
// hex digits of its SHA-256.
func Fingerprint(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}
