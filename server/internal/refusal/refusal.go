// Package refusal is the error of a request refused for a reason the caller
// may read: a malformed argument, a forbidden group, a refused token. The
// reason travels as a field, beside the sentinel that classifies it, so the
// API tells the caller the reason and nothing else, however the error was
// wrapped on its way up, and a sentinel never has to be cut off a message.
package refusal

import (
	"fmt"
	"strings"
)

// Error is a refusal. It wraps Kind, the sentinel the API maps to a status
// code (broker.ErrInvalidArgument, auth.ErrUnauthenticated...).
type Error struct {
	Kind   error
	Reason string // written for the caller; never an internal detail
}

// New returns a refusal of kind for reason.
func New(kind error, reason string) error { return &Error{Kind: kind, Reason: reason} }

// Newf returns a refusal of kind for the reason format and args make.
func Newf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// Error is "kind: reason", as for fmt.Errorf("%w: reason", kind).
func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Reason }

func (e *Error) Unwrap() error { return e.Kind }

// CallerMessage is the reason.
func (e *Error) CallerMessage() string { return e.Reason }

// maxEcho bounds how much of a caller's string a reason repeats.
const maxEcho = 64

// Echo cuts a string the caller sent (a name, a key) for its reason: at
// most 64 bytes of whole characters, marked "…" when cut, so that no reason
// grows with what a caller sends.
func Echo(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return strings.ToValidUTF8(s[:maxEcho], "") + "…"
}
