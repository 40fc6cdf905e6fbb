package refusal

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestError(t *testing.T) {
	kind := errors.New("invalid argument")
	err := fmt.Errorf("revoke: %w", Newf(kind, "%s is empty", "carto_token"))
	var r *Error
	if !errors.Is(err, kind) || !errors.As(err, &r) {
		t.Fatalf("%v does not wrap its kind and refusal", err)
	}
	if r.CallerMessage() != "carto_token is empty" || err.Error() != "revoke: invalid argument: carto_token is empty" {
		t.Fatalf("caller message %q, error %q", r.CallerMessage(), err)
	}
	if New(kind, "x").Error() != fmt.Errorf("%w: x", kind).Error() {
		t.Fatal("a refusal's text differs from the fmt.Errorf it replaces")
	}
}

func TestEcho(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), strings.Repeat("a", 64) + "…"},
		{strings.Repeat("a", 63) + "é", strings.Repeat("a", 63) + "…"}, // a character cut in two is dropped
	} {
		if got := Echo(tt.in); got != tt.want {
			t.Errorf("Echo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
