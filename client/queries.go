package client

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
)

// Queries lists the named queries the caller may run, by name: those open to
// its group and the public ones. A client without credentials (no Username,
// Token or client certificate) gets the public ones.
func (c *Client) Queries(ctx context.Context) ([]NamedQuery, error) {
	var resp *tokenbrokerv1.ListQueriesResponse
	err := c.call(ctx, true, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.rpc.ListQueries(ctx, &tokenbrokerv1.ListQueriesRequest{}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]NamedQuery, 0, len(resp.GetQueries()))
	for _, q := range resp.GetQueries() {
		nq := NamedQuery{
			Name:   q.GetName(),
			APIs:   append([]string(nil), q.GetApis()...),
			Public: q.GetPublic(),
		}
		for _, p := range q.GetParameters() {
			nq.Parameters = append(nq.Parameters, QueryParameter{
				Name:      p.GetName(),
				BoundTo:   p.GetBoundTo(),
				Type:      p.GetType(),
				Required:  p.GetRequired(),
				Default:   p.GetDefaultValue(),
				Allowed:   append([]string(nil), p.GetAllowed()...),
				Pattern:   p.GetPattern(),
				Min:       p.GetMin(),
				Max:       p.GetMax(),
				MinLength: int(p.GetMinLength()),
				MaxLength: int(p.GetMaxLength()),
			})
		}
		out = append(out, nq)
	}
	return out, nil
}

// Query runs the named query name through CARTO's SQL API and returns its
// rows. params are the values the caller supplies, by parameter name, as
// text (the broker reads each as its parameter's type); identity-bound
// parameters are filled in by the broker and must not be supplied. A client
// without credentials may run public queries.
//
// Errors (statuses): NOT_FOUND for an unknown query; PERMISSION_DENIED for
// one not open to the caller; INVALID_ARGUMENT, naming the parameter and the
// rule, for a value outside its declaration, an unknown or identity-bound
// parameter, a required one missing, or a query not served through the SQL
// API; RESOURCE_EXHAUSTED when a public query is run too often from one
// address or the result passes the query's limits (not retried);
// UNAVAILABLE when CARTO cannot answer (retried, see [Config.MaxRetries]).
func (c *Client) Query(ctx context.Context, name string, params map[string]string) (QueryResult, error) {
	if name == "" {
		return QueryResult{}, status.Error(codes.InvalidArgument, "client: Query needs a query name")
	}
	req := &tokenbrokerv1.RunQueryRequest{Name: name, Params: params}
	var resp *tokenbrokerv1.RunQueryResponse
	err := c.call(ctx, true, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.rpc.RunQuery(ctx, req, opts...)
		return err
	})
	if err != nil {
		return QueryResult{}, err
	}
	r := QueryResult{
		Columns: make([]QueryColumn, 0, len(resp.GetColumns())),
		Rows:    make([]map[string]any, 0, len(resp.GetRows())),
	}
	for _, col := range resp.GetColumns() {
		r.Columns = append(r.Columns, QueryColumn{Name: col.GetName(), Type: col.GetType()})
	}
	for _, row := range resp.GetRows() {
		r.Rows = append(r.Rows, row.AsMap())
	}
	return r, nil
}

// QueryGeoJSON runs the named query name through CARTO's Maps API and
// returns its GeoJSON FeatureCollection as JSON text, ready to serve to a
// map (as application/geo+json) or to decode into the caller's own types.
// params and errors are as [Client.Query]'s, the query having to be served
// through the Maps API.
func (c *Client) QueryGeoJSON(ctx context.Context, name string, params map[string]string) (json.RawMessage, error) {
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "client: QueryGeoJSON needs a query name")
	}
	req := &tokenbrokerv1.RunQueryGeoJSONRequest{Name: name, Params: params}
	var resp *tokenbrokerv1.RunQueryGeoJSONResponse
	err := c.call(ctx, true, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.rpc.RunQueryGeoJSON(ctx, req, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Through encoding/json rather than protojson: its output is stable
	// (keys sorted, no randomised spacing).
	b, err := json.Marshal(resp.GetFeatureCollection().AsMap())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "client: encoding the FeatureCollection: %v", err)
	}
	return b, nil
}
