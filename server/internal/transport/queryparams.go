package transport

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/types/known/structpb"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

var geoJSONResponse = (&tokenbrokerv1.RunQueryGeoJSONResponse{}).ProtoReflect().Descriptor().FullName()

// queryRoute is a named query's REST route.
var queryRoute = regexp.MustCompile(`^/v1/queries/[^/]+(/geojson)?$`)

// queryParamsInQueryString lets a named query take its parameters as the
// query string's own (GET /v1/queries/stores?storetype=Supermarket), which
// is how a map loads a GeoJSON by URL: each becomes params[name], the form
// grpc-gateway reads into the request's params map. The form is handed over
// parsed (grpc-gateway reads r.Form when it is set). A name given twice is
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
		form := make(url.Values, len(values))
		for k, vs := range values {
			if !strings.HasPrefix(k, "params[") {
				k = "params[" + k + "]"
			}
			if len(vs) > 1 || form.Has(k) {
				writeJSONError(w, http.StatusBadRequest, codes.InvalidArgument, "query parameter "+refusal.Echo(k)+" is given more than once; give it once")
				return
			}
			form[k] = vs
		}
		r2 := *r // a shallow copy: only its form differs
		r2.Form = form
		next.ServeHTTP(w, &r2)
	})
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

// memoJSON is the gateway's JSON marshaler, which keeps the JSON of named
// queries' answers by message: the service hands every caller of a cached
// result the same message, never changed, so its JSON is made once, not on
// every hit (protojson's reflection was most of a hit's cost). What it keeps
// is bounded in bytes (memoBytes; an answer over memoMaxAnswer is not
// kept); past the bound it starts afresh.
type memoJSON struct {
	*runtime.JSONPb
	mu    sync.Mutex
	byMsg map[proto.Message][]byte
	bytes int
}

const (
	memoBytes     = 32 << 20
	memoMaxAnswer = 1 << 20
)

func newMemoJSON(m *runtime.JSONPb) *memoJSON {
	return &memoJSON{JSONPb: m, byMsg: map[proto.Message][]byte{}}
}

// Marshal marshals v, from memory for a query's answer marshaled before.
func (m *memoJSON) Marshal(v any) ([]byte, error) {
	var msg proto.Message
	switch x := v.(type) {
	case *tokenbrokerv1.RunQueryResponse:
		msg = x
	case *structpb.Struct: // RunQueryGeoJSON's body, the FeatureCollection
		msg = x
	default:
		return m.JSONPb.Marshal(v)
	}
	m.mu.Lock()
	b, ok := m.byMsg[msg]
	m.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := m.JSONPb.Marshal(v)
	if err != nil || len(b) > memoMaxAnswer {
		return b, err
	}
	m.mu.Lock()
	if m.bytes+len(b) > memoBytes {
		clear(m.byMsg)
		m.bytes = 0
	}
	m.byMsg[msg] = b
	m.bytes += len(b)
	m.mu.Unlock()
	return b, nil
}
