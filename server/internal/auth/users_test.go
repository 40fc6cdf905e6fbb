package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := HashPassword(pw, MinBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestUsersAuthenticate(t *testing.T) {
	t.Parallel() // bcrypt is slow under -race: overlap the slow tests
	users, err := NewUsers([]User{{Username: "User.Boston@ACME.com ", PasswordHash: mustHash(t, "boston"), Group: "BOSTON"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, pw string
		want           error
	}{
		{"right", "user.boston@acme.com", "boston", nil},
		{"case and spaces", "  USER.BOSTON@acme.com", "boston", nil},
		{"wrong password", "user.boston@acme.com", "Boston", ErrInvalidCredentials},
		{"unknown user", "nobody@acme.com", "boston", ErrInvalidCredentials},
		{"empty password", "user.boston@acme.com", "", ErrInvalidCredentials},
		{"over 72 bytes", "user.boston@acme.com", strings.Repeat("x", 100), ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := users.Authenticate(context.Background(), tt.user, tt.pw)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && (u.Group != "BOSTON" || u.Username != "user.boston@acme.com") {
				t.Fatalf("user = %+v", u)
			}
			if err != nil && err.Error() != ErrInvalidCredentials.Error() {
				t.Fatalf("failure reveals more than the one message: %q", err)
			}
		})
	}
}

// TestUnknownUserCostsBcrypt checks that an unknown user is not answered
// without bcrypt work: the dummy hash is a real hash with the highest cost in
// use. Timings are printed for a reader, never asserted.
func TestUnknownUserCostsBcrypt(t *testing.T) {
	t.Parallel()
	h11, err := HashPassword("pw", 11)
	if err != nil {
		t.Fatal(err)
	}
	users, err := NewUsers([]User{{Username: "a", PasswordHash: mustHash(t, "pw"), Group: "G"}, {Username: "b", PasswordHash: h11, Group: "G"}})
	if err != nil {
		t.Fatal(err)
	}
	dummy, err := users.dummyHash()
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost(dummy); err != nil || cost != 11 {
		t.Fatalf("dummy hash cost = %d, %v; want 11, the highest in use", cost, err)
	}
	measure := func(name string) time.Duration {
		start := time.Now()
		_, _ = users.Authenticate(context.Background(), name, "wrong")
		return time.Since(start)
	}
	t.Logf("wrong password (cost 11) %v, unknown user %v", measure("b"), measure("nobody"))
}

func TestUsersHonourCancellation(t *testing.T) {
	t.Parallel()
	users, err := NewUsers([]User{{Username: "a", PasswordHash: mustHash(t, "pw"), Group: "G"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := users.Authenticate(ctx, "a", "pw"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled before any bcrypt work", err)
	}
}

func TestValidateUsers(t *testing.T) {
	err := validateUsers([]User{
		{Username: "a", PasswordHash: "plaintext", Group: "G"},
		{Username: "A ", PasswordHash: "$2a$04$abcdefghijklmnopqrstuuGkuY3lUQbEjQK2vKQDG10tXPLFAWSU6", Group: ""},
		{Username: "", PasswordHash: "", Group: "G"},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"not a bcrypt hash", "duplicate username", "group is required", "cost 4 is below", "username is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
