package auth

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// claimRules read a Principal's group and admin flag from an IdP token's
// claims, as IdPConfig's GroupClaim, GroupMatch, AdminClaim and AdminValue
// say.
type claimRules struct {
	groupClaim string
	groupPath  []string
	groupRE    *regexp.Regexp
	adminPath  []string
	adminValue string
}

// newClaimRules fills in cfg's default group claim and parses the claim
// settings, reporting every problem.
func newClaimRules(cfg *IdPConfig) (claimRules, []error) {
	var errs []error
	if cfg.GroupClaim == "" {
		cfg.GroupClaim = idpDefaultGroupClaim
	}
	r := claimRules{groupClaim: cfg.GroupClaim, adminValue: cfg.AdminValue}
	var err error
	if r.groupPath, err = idpClaimPath(cfg.GroupClaim); err != nil {
		errs = append(errs, fmt.Errorf("group claim: %w", err))
	}
	if cfg.GroupMatch != "" {
		if r.groupRE, err = regexp.Compile(cfg.GroupMatch); err != nil {
			errs = append(errs, fmt.Errorf("group match: %w", err))
		}
	}
	switch {
	case (cfg.AdminClaim == "") != (cfg.AdminValue == ""):
		errs = append(errs, errors.New("admin claim and admin value must be set together"))
	case cfg.AdminClaim != "":
		if r.adminPath, err = idpClaimPath(cfg.AdminClaim); err != nil {
			errs = append(errs, fmt.Errorf("admin claim: %w", err))
		}
	}
	return r, errs
}

// group extracts the principal's group from the configured claim.
func (r claimRules) group(claims jwt.MapClaims) (string, bool) {
	for _, v := range idpClaimStrings(claims, r.groupPath) {
		if r.groupRE == nil {
			return v, v != ""
		}
		m := r.groupRE.FindStringSubmatch(v)
		switch {
		case m == nil:
			continue
		case len(m) > 1 && m[1] != "":
			return m[1], true
		case len(m) == 1 && v != "":
			return v, true
		}
	}
	return "", false
}

// admin reports whether the admin claim contains the admin value.
func (r claimRules) admin(claims jwt.MapClaims) bool {
	return r.adminPath != nil && slices.Contains(idpClaimStrings(claims, r.adminPath), r.adminValue)
}

// idpClaimStrings returns the string values at path: the string itself, or the
// string elements of a list, in order. Anything else yields nothing.
func idpClaimStrings(claims jwt.MapClaims, path []string) []string {
	var v any = map[string]any(claims)
	for _, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = m[name]; !ok {
			return nil
		}
	}
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// idpClaimPath splits a dot path such as "realm_access.roles".
func idpClaimPath(s string) ([]string, error) {
	path := strings.Split(s, ".")
	if slices.Contains(path, "") {
		return nil, fmt.Errorf("%q is not a dot path such as realm_access.roles", s)
	}
	return path, nil
}
