package cartosim

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// serveAdmin serves /_sim/*: never faulted, not counted, and only to a
// caller holding the control token. They list every live token, so no CORS
// header is ever sent: a web page on another origin can neither read them
// nor pass a preflight (which carries no credentials, so is refused).
func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !s.controlAllowed(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cartosim-control"`)
		writeJSON(w, http.StatusUnauthorized, errorBody("Unauthorized",
			"the emulator's control endpoints need `Authorization: Bearer <control token>`, printed when the emulator starts"))
		return
	}
	allow := map[string]string{
		"/_sim/stats":  http.MethodGet,
		"/_sim/faults": "GET, PUT",
		"/_sim/reset":  http.MethodPost,
		"/_sim/tokens": http.MethodGet,
	}
	methods, ok := allow[r.URL.Path]
	if !ok {
		notFound(w, r)
		return
	}
	if !slices.Contains(strings.Split(methods, ", "), r.Method) {
		methodNotAllowed(w, methods)
		return
	}
	switch r.URL.Path {
	case "/_sim/stats":
		writeJSON(w, http.StatusOK, s.Stats())
	case "/_sim/faults":
		if r.Method == http.MethodPut {
			var f Faults
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
			if err := dec.Decode(&f); err != nil {
				writeJSON(w, http.StatusBadRequest, errorBody("Invalid faults", err.Error()))
				return
			}
			s.SetFaults(f)
		}
		writeJSON(w, http.StatusOK, s.Faults())
	case "/_sim/reset":
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/tokens":
		writeJSON(w, http.StatusOK, s.debugTokens())
	}
}

// controlAllowed reports whether r carries the control token, as its one
// Authorization header (never a query parameter, which ends up in logs).
func (s *Sim) controlAllowed(r *http.Request) bool {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return false
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), s.control) == 1
}
