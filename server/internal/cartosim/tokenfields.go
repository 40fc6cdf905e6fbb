package cartosim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// readJSONObject reads a body that must be a JSON object.
func readJSONObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, *httpError) {
	body, status, desc := readBody(w, r)
	if status != 0 {
		return nil, tokensError(status, http.StatusText(status), desc)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, tokensError(http.StatusBadRequest, "Invalid JSON", "The request body must be a JSON object")
	}
	return m, nil
}

// tokenFields are the fields present in a create or patch body; nil means
// absent. Unknown fields are ignored.
type tokenFields struct {
	grants     *[]Grant
	referers   *[]string
	apis       *[]string
	name       *string
	expiration *time.Time
}

func parseTokenFields(m map[string]json.RawMessage, now time.Time) (tokenFields, *httpError) {
	var f tokenFields
	bad := func(field, desc string) (tokenFields, *httpError) {
		return tokenFields{}, tokensError(http.StatusBadRequest, "Invalid "+field, desc)
	}
	if raw, ok := m["grants"]; ok {
		var gs []Grant
		if err := json.Unmarshal(raw, &gs); err != nil {
			return bad("grants", "grants must be an array of {connection_name, source} objects")
		}
		if len(gs) == 0 {
			return bad("grants", "grants must contain at least one grant")
		}
		for i, g := range gs {
			if g.ConnectionName == "" || g.Source == "" {
				return bad("grants", fmt.Sprintf("grants[%d] needs a non-empty connection_name and source", i))
			}
		}
		f.grants = &gs
	}
	if raw, ok := m["referers"]; ok {
		refs := []string{}
		if err := json.Unmarshal(raw, &refs); err != nil {
			return bad("referers", "referers must be an array of strings")
		}
		for _, ref := range refs {
			if !isOrigin(ref) {
				return bad("referers", fmt.Sprintf("referer %q must be an origin such as https://app.example.com (scheme://host[:port], no path, no trailing slash)", ref))
			}
		}
		if refs == nil {
			refs = []string{}
		}
		f.referers = &refs
	}
	if raw, ok := m["allowed_apis"]; ok {
		apis := []string{}
		if err := json.Unmarshal(raw, &apis); err != nil {
			return bad("allowed_apis", "allowed_apis must be an array of strings")
		}
		for _, a := range apis {
			if !slices.Contains(knownAPIs(), a) {
				return bad("allowed_apis", fmt.Sprintf("unknown API %q; allowed values are %s", a, strings.Join(knownAPIs(), ", ")))
			}
		}
		if apis == nil {
			apis = []string{}
		}
		f.apis = &apis
	}
	if raw, ok := m["name"]; ok {
		var name *string
		if err := json.Unmarshal(raw, &name); err != nil {
			return bad("name", "name must be a string")
		}
		if name == nil {
			name = new(string)
		}
		f.name = name
	}
	if raw, ok := m["expiration_date"]; ok {
		// The exact CARTO format is not public; RFC 3339 is assumed.
		var s *string
		if err := json.Unmarshal(raw, &s); err != nil {
			return bad("expiration_date", "expiration_date must be an RFC 3339 date-time string")
		}
		if s != nil {
			t, err := time.Parse(time.RFC3339, *s)
			if err != nil {
				return bad("expiration_date", "expiration_date must be an RFC 3339 date-time string")
			}
			if !t.After(now) {
				return bad("expiration_date", "expiration_date must be in the future")
			}
			f.expiration = &t
		}
	}
	return f, nil
}

// isOrigin reports whether ref is a bare origin, scheme://host[:port], the
// only form CARTO matches (a trailing slash silently fails every request).
func isOrigin(ref string) bool {
	u, err := url.Parse(ref)
	return err == nil && u.Scheme != "" && u.Host != "" && u.User == nil &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery &&
		ref == u.Scheme+"://"+u.Host
}
