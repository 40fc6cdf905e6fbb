package config

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/seal"
)

// into reads a value with parse and puts it in the field at returns; a value
// parse refuses leaves the field as it was.
func into[T any](at func(*Config) *T, parse func(name, v string) (T, error)) func(*Config, string, string) error {
	return func(c *Config, name, v string) error {
		x, err := parse(name, v)
		if err != nil {
			return err
		}
		*at(c) = x
		return nil
	}
}

func text(_, v string) (string, error) { return v, nil }

func lower(_, v string) (string, error) { return strings.ToLower(v), nil }

func boolean(name, v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false", name, v)
	}
	return b, nil
}

func port(name, v string) (int, error) {
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("%s: %q is not a port number", name, v)
	}
	return p, nil
}

func count(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a count (0 means no limit)", name, v)
	}
	return n, nil
}

// between reads a whole number that must lie in [lo, hi].
func between(lo, hi int) func(name, v string) (int, error) {
	return func(name, v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("%s: %q is not a whole number from %d to %d", name, v, lo, hi)
		}
		return n, nil
	}
}

func duration(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration such as 1h or 30m", name, v)
	}
	return d, nil
}

// list reads comma-separated values, blanks dropped.
func list(_, v string) ([]string, error) {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out, nil
}

func logLevel(name, v string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return 0, fmt.Errorf("%s: %q is not one of debug, info, warn, error", name, v)
	}
	return l, nil
}

// revokers reads CARTO_TOKEN_REVOKERS: whether only admins may revoke a
// group's CARTO token.
func revokers(name, v string) (bool, error) {
	switch v {
	case "members", "admins":
		return v == "admins", nil
	}
	return false, fmt.Errorf("%s: %q is not members (a group's members may revoke its CARTO token) or admins", name, v)
}

// baseURLAlias reads CARTO_API_BASE_URL, the CARTO guides' name for the
// base URL.
func baseURLAlias(c *Config, _, v string) error {
	if v == "" {
		return nil
	}
	var err error
	if c.Carto.BaseURL != "" && c.Carto.BaseURL != v {
		err = errors.New("CARTO_BASE_URL and CARTO_API_BASE_URL are both set, to different URLs: set one")
	}
	c.Carto.BaseURL = v
	return err
}

// storeKey reads TOKENBROKER_STORE_KEY. A key set, if wrong, is not
// reported as missing as well.
func storeKey(c *Config, name, v string) error {
	if v == "" {
		return nil
	}
	key, err := seal.ParseKey(v)
	if err != nil {
		c.Store.Key = []byte{}
		return fmt.Errorf("%s: %w", name, err)
	}
	c.Store.Key = key
	return nil
}

// applyDemo makes demo mode's own settings: sessions signed with a fresh
// random secret (they end with the process), and the CARTO client of the
// in-process emulator, whose address and client the app fills in.
func (c *Config) applyDemo() {
	if !c.Demo {
		return
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	c.JWTSecret = secret
	c.Carto = CartoConfig{CallTimeout: c.Carto.CallTimeout, BreakerCooldown: c.Carto.BreakerCooldown}
}

// trustedProxies reads TRUSTED_PROXIES: addresses (a single host) or CIDRs.
func trustedProxies(c *Config, name, v string) error {
	var errs []error
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			a, err := netip.ParseAddr(item)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not an address or a CIDR", name, item))
				continue
			}
			item = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()).String()
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an address or a CIDR", name, item))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p.Masked())
	}
	return errors.Join(errs...)
}
