package transport

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
)

var geoJSONResponse = (&tokenbrokerv1.RunQueryGeoJSONResponse{}).ProtoReflect().Descriptor().FullName()

// queryRoute is a named query's REST route.
var queryRoute = regexp.MustCompile(`^/v1/queries/[^/]+(/geojson)?$`)

// queryParamsInQueryString lets a named query take its parameters as the
// query string's own (GET /v1/queries/stores?storetype=Supermarket), which
// is how a map loads a GeoJSON by URL: each becomes params[name], the form
// grpc-gateway reads into the request's params map. A name given twice is
// refused (400): a parameter's value is one value.
func queryParamsInQueryString(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.RawQuery == "" || !queryRoute.MatchString(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		values, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, codes.InvalidArgument, "the query string is not URL-encoded correctly")
			return
		}
		out := url.Values{}
		for k, vs := range values {
			if len(vs) > 1 {
				writeJSONError(w, http.StatusBadRequest, codes.InvalidArgument, "query parameter "+shortName(k)+" is given more than once; give it once")
				return
			}
			if !strings.HasPrefix(k, "params[") {
				k = "params[" + k + "]"
			}
			if out.Has(k) {
				writeJSONError(w, http.StatusBadRequest, codes.InvalidArgument, "query parameter "+shortName(k)+" is given more than once; give it once")
				return
			}
			out.Set(k, vs[0])
		}
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = out.Encode()
		next.ServeHTTP(w, r2)
	})
}

// shortName cuts a caller's parameter name for a message.
func shortName(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}

// geoJSONContentType serves a query's GeoJSON as application/geo+json (the
// route's body is the FeatureCollection itself). The message is the
// generated wrapper of the response's body field: it is told by name.
func geoJSONContentType(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	if m.ProtoReflect().Descriptor().FullName() == geoJSONResponse {
		w.Header().Set("Content-Type", "application/geo+json")
	}
	return nil
}
