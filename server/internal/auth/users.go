package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// MinBcryptCost is the lowest bcrypt cost accepted for stored password hashes.
const MinBcryptCost = 10

// Input bounds of a login, in bytes. bcrypt reads at most 72 bytes of a
// password and silently ignores the rest when comparing, so a longer
// password is refused (by the login and by `tokenbroker hash-password`)
// rather than checked on its first 72 bytes.
const (
	MaxUsernameLen = 256
	MaxPasswordLen = 72
)

// User is one account of the user store.
type User struct {
	Username     string
	PasswordHash string // bcrypt
	Group        string
	Admin        bool // may revoke a group's tokens and list the tokens held
}

// Users is the broker's own user store: usernames with bcrypt hashes.
type Users struct {
	byName map[string]User
	// dummyHash is compared against when the user does not exist, so an unknown
	// user costs the same bcrypt work as a wrong password. It is made on first
	// use (or by Prepare), not by NewUsers: making it costs a bcrypt hash, which
	// validating a configuration should not pay.
	dummyHash func() ([]byte, error)
}

// NormalizeUsername is how usernames are compared: case and surrounding
// spaces do not matter (they are e-mail addresses in practice).
func NormalizeUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// validateUsers reports every problem of the accounts at once.
func validateUsers(users []User) error {
	var errs []error
	seen := make(map[string]bool, len(users))
	for i, usr := range users {
		name := NormalizeUsername(usr.Username)
		where := fmt.Sprintf("user %d (%q)", i+1, name)
		if name == "" {
			errs = append(errs, fmt.Errorf("user %d: username is required", i+1))
		} else if seen[name] {
			errs = append(errs, fmt.Errorf("%s: duplicate username", where))
		}
		seen[name] = true
		if strings.TrimSpace(usr.Group) == "" {
			errs = append(errs, fmt.Errorf("%s: group is required", where))
		}
		cost, err := bcrypt.Cost([]byte(usr.PasswordHash))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: password_hash is not a bcrypt hash (make one with `tokenbroker hash-password`)", where))
		case cost < MinBcryptCost:
			errs = append(errs, fmt.Errorf("%s: bcrypt cost %d is below the minimum %d", where, cost, MinBcryptCost))
		}
	}
	return errors.Join(errs...)
}

// NewUsers validates the accounts and builds the store.
func NewUsers(users []User) (*Users, error) {
	if err := validateUsers(users); err != nil {
		return nil, err
	}
	u := &Users{byName: make(map[string]User, len(users))}
	maxCost := MinBcryptCost
	for _, usr := range users {
		cost, _ := bcrypt.Cost([]byte(usr.PasswordHash))
		maxCost = max(maxCost, cost)
		usr.Username = NormalizeUsername(usr.Username)
		u.byName[usr.Username] = usr
	}
	// The dummy hash has the highest cost in use, so an unknown user never
	// answers faster than a known one.
	u.dummyHash = sync.OnceValues(func() ([]byte, error) {
		var pw [16]byte
		_, _ = rand.Read(pw[:]) // crypto/rand.Read never fails (Go 1.24+)
		dummy, err := bcrypt.GenerateFromPassword(pw[:], maxCost)
		if err != nil {
			return nil, fmt.Errorf("prepare dummy hash: %w", err)
		}
		return dummy, nil
	})
	return u, nil
}

// Prepare makes the hash that unknown users are checked against, so that the
// first login of an unknown user is not the one that pays for it. A broker
// calls it at start.
func (u *Users) Prepare() error {
	_, err := u.dummyHash()
	return err
}

// Authenticate checks a username and password. Every failure is
// ErrInvalidCredentials, after the same bcrypt work, except a password over
// MaxPasswordLen, refused without any (bcrypt would compare only its first
// 72 bytes). Each check costs one bcrypt comparison of CPU: callers bound how
// many run at once (LoginLimiter).
func (u *Users) Authenticate(ctx context.Context, username, password string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, err
	}
	if len(password) > MaxPasswordLen {
		return User{}, ErrInvalidCredentials
	}
	usr, known := u.byName[NormalizeUsername(username)]
	var hash []byte
	if known {
		hash = []byte(usr.PasswordHash)
	} else {
		dummy, err := u.dummyHash()
		if err != nil {
			return User{}, err
		}
		hash = dummy
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil || !known {
		return User{}, ErrInvalidCredentials
	}
	return usr, nil
}

// HashPassword returns a bcrypt hash of password at cost. A password over
// MaxPasswordLen is refused: bcrypt would use only its first 72 bytes.
func HashPassword(password string, cost int) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("the password is %d bytes: bcrypt uses at most %d, choose a shorter one", len(password), MaxPasswordLen)
	}
	if cost < MinBcryptCost {
		return "", fmt.Errorf("bcrypt cost %d is below the minimum %d", cost, MinBcryptCost)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}
