package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/policy"
)

// DefaultGroup is the key under groups: whose policy applies to every group
// not named there.
const DefaultGroup = "*"

// fileConfig is the YAML file named by TOKENBROKER_CONFIG.
type fileConfig struct {
	Users             []fileUser            `yaml:"users"`
	Groups            map[string]filePolicy `yaml:"groups"`
	IdentityProviders []fileIdP             `yaml:"identity_providers"`
	Services          []fileService         `yaml:"services"`
	Queries           []fileQuery           `yaml:"queries"`
}

// fileQuery is a named query the broker runs itself (namedquery.Query).
type fileQuery struct {
	Name       string        `yaml:"name"`
	Connection string        `yaml:"connection"`
	SQL        string        `yaml:"sql"`
	APIs       []string      `yaml:"apis"`
	Groups     []string      `yaml:"groups"`
	Public     bool          `yaml:"public"`
	CacheTTL   time.Duration `yaml:"cache_ttl"`
	MaxRows    int           `yaml:"max_rows"`
	MaxBytes   int64         `yaml:"max_bytes"`
	Params     []fileParam   `yaml:"params"`
}

type fileParam struct {
	Name      string   `yaml:"name"`
	Bind      string   `yaml:"bind"`
	Type      string   `yaml:"type"`
	Required  bool     `yaml:"required"`
	Default   *string  `yaml:"default"`
	Allowed   []string `yaml:"allowed"`
	Pattern   string   `yaml:"pattern"`
	Min       string   `yaml:"min"`
	Max       string   `yaml:"max"`
	MinLength int      `yaml:"min_length"`
	MaxLength int      `yaml:"max_length"`
}

type fileUser struct {
	Username     string `yaml:"username"`
	PasswordHash string `yaml:"password_hash"`
	Group        string `yaml:"group"`
	Admin        bool   `yaml:"admin"`
}

// fileIdP is an identity provider whose tokens the broker accepts.
type fileIdP struct {
	Name       string        `yaml:"name"`
	Issuer     string        `yaml:"issuer"`
	JWKSURL    string        `yaml:"jwks_url"`
	Audience   string        `yaml:"audience"`
	Algorithms []string      `yaml:"algorithms"`
	GroupClaim string        `yaml:"group_claim"`
	GroupMatch string        `yaml:"group_match"`
	AdminClaim string        `yaml:"admin_claim"`
	AdminValue string        `yaml:"admin_value"`
	Leeway     time.Duration `yaml:"leeway"`
}

// fileService is an internal service identified by its client certificate.
type fileService struct {
	Name     string   `yaml:"name"`
	Identity string   `yaml:"identity"`
	Groups   []string `yaml:"groups"`
}

type filePolicy struct {
	Grants      []fileGrant   `yaml:"grants"`
	AllowedAPIs []string      `yaml:"allowed_apis"`
	Referers    []string      `yaml:"referers"`
	TokenTTL    time.Duration `yaml:"token_ttl"`
	// BoundParameters: query parameter -> the identity value it stands for
	// ({{group}}), for the CARTO gateway.
	BoundParameters map[string]string `yaml:"bound_parameters"`
}

type fileGrant struct {
	Connection string `yaml:"connection"`
	Source     string `yaml:"source"`
	Dialect    string `yaml:"dialect"`
	Shared     bool   `yaml:"shared"`
}

// readFile reads the file named by TOKENBROKER_CONFIG, or in demo mode
// without one its built-in file, into the users, group policies, identity
// providers and services of c.
func readFile(c *Config, name, path string) error {
	var fc fileConfig
	var err error
	switch {
	case path != "":
		c.ConfigFile = path
		fc, err = loadFile(name, path)
	case c.Demo:
		c.ConfigFile = "(built-in demo configuration)"
		if fc, err = parseFile(bytes.NewReader(demoYAML)); err != nil {
			err = fmt.Errorf("built-in demo configuration: %w", err)
		}
	}
	c.Users = fc.users()
	c.Groups, c.DefaultPolicy = fc.policies()
	c.IdentityProviders = fc.identityProviders()
	c.Services = fc.services()
	c.Queries = fc.queries()
	return err
}

// loadFile reads and decodes the file at path, which must name some caller.
func loadFile(name, path string) (fileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return fileConfig{}, fmt.Errorf("%s: %w", name, err)
	}
	fc, err := parseFile(bytes.NewReader(b))
	if err != nil {
		return fileConfig{}, fmt.Errorf("%s %s: %w", name, path, err)
	}
	if len(fc.Users) == 0 && len(fc.IdentityProviders) == 0 && len(fc.Services) == 0 {
		return fc, fmt.Errorf("%s %s has no users:, identity_providers: or services:", name, path)
	}
	return fc, nil
}

// parseFile decodes the YAML strictly: an unknown field is an error, since a
// misspelt key would otherwise be silently ignored.
func parseFile(r io.Reader) (fileConfig, error) {
	var fc fileConfig
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fileConfig{}, readableYAMLError(err)
	}
	return fc, nil
}

// sections names where each of the file's Go types sits, for messages.
var sections = map[string]string{
	"fileConfig": "at the top level", "fileUser": "under users:", "filePolicy": "under a group of groups:",
	"fileGrant": "under grants:", "fileIdP": "under identity_providers:", "fileService": "under services:",
	"fileQuery": "under queries:", "fileParam": "under a query's params:",
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`)

// readableYAMLError says "unknown key passwd under users:" where the YAML
// decoder says "field passwd not found in type config.fileUser".
func readableYAMLError(err error) error {
	msg := unknownField.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := unknownField.FindStringSubmatch(m)
		where, ok := sections[sub[2]]
		if !ok {
			return m
		}
		return "unknown key " + sub[1] + " " + where
	})
	msg = strings.ReplaceAll(msg, "yaml: unmarshal errors:\n  ", "")
	return errors.New(strings.ReplaceAll(msg, "\n  ", "; "))
}

func (fc fileConfig) users() []auth.User {
	out := make([]auth.User, len(fc.Users))
	for i, u := range fc.Users {
		out[i] = auth.User{Username: u.Username, PasswordHash: u.PasswordHash, Group: u.Group, Admin: u.Admin}
	}
	return out
}

// policies returns the named groups' templates and the default one. With no
// groups: section every group gets the reference policy.
func (fc fileConfig) policies() (map[string]policy.Template, *policy.Template) {
	if fc.Groups == nil {
		ref := policy.Reference()
		return nil, &ref
	}
	named := map[string]policy.Template{}
	var fallback *policy.Template
	for g, fp := range fc.Groups {
		t := policy.Template{AllowedAPIs: fp.AllowedAPIs, Referers: fp.Referers, TokenTTL: fp.TokenTTL, BoundParameters: fp.BoundParameters}
		for _, gr := range fp.Grants {
			t.Grants = append(t.Grants, policy.GrantTemplate{Connection: gr.Connection, Source: gr.Source, Dialect: policy.Dialect(gr.Dialect), Shared: gr.Shared})
		}
		if g == DefaultGroup {
			fallback = &t
			continue
		}
		named[g] = t
	}
	return named, fallback
}

func (fc fileConfig) identityProviders() []auth.IdPConfig {
	out := make([]auth.IdPConfig, len(fc.IdentityProviders))
	for i, p := range fc.IdentityProviders {
		out[i] = auth.IdPConfig{
			Name: p.Name, Issuer: p.Issuer, JWKSURL: p.JWKSURL, Audience: p.Audience, Algorithms: p.Algorithms,
			GroupClaim: p.GroupClaim, GroupMatch: p.GroupMatch, AdminClaim: p.AdminClaim, AdminValue: p.AdminValue, Leeway: p.Leeway,
		}
	}
	return out
}

func (fc fileConfig) services() []auth.Service {
	out := make([]auth.Service, len(fc.Services))
	for i, s := range fc.Services {
		out[i] = auth.Service{Name: s.Name, Identity: s.Identity, Groups: s.Groups}
	}
	return out
}

func (fc fileConfig) queries() []namedquery.Query {
	out := make([]namedquery.Query, len(fc.Queries))
	for i, q := range fc.Queries {
		out[i] = namedquery.Query{
			Name: q.Name, Connection: q.Connection, SQL: q.SQL, APIs: q.APIs, Groups: q.Groups, Public: q.Public,
			CacheTTL: q.CacheTTL, MaxRows: q.MaxRows, MaxBytes: q.MaxBytes,
		}
		for _, p := range q.Params {
			out[i].Params = append(out[i].Params, namedquery.Param{
				Name: p.Name, Bind: p.Bind, Type: namedquery.Type(p.Type), Required: p.Required, Default: p.Default,
				Allowed: p.Allowed, Pattern: p.Pattern, Min: p.Min, Max: p.Max, MinLength: p.MinLength, MaxLength: p.MaxLength,
			})
		}
	}
	return out
}
