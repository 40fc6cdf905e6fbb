package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/audit"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

// caller is the authenticated caller of an Optional method, or nil for an
// anonymous one (who may run the public named queries).
func caller(ctx context.Context) *auth.Principal {
	if p, ok := auth.FromContext(ctx); ok {
		return &p
	}
	return nil
}

// queryEvent starts the audit event of a named query's run.
func (s *Service) queryEvent(ctx context.Context, p *auth.Principal, name string) audit.Event {
	var who auth.Principal
	if p != nil {
		who = *p
	}
	ev := s.event(ctx, audit.ActionQuery, who)
	ev.Detail = name
	return ev
}

// ListQueries lists the named queries the caller may run.
func (s *Service) ListQueries(ctx context.Context, _ *tokenbrokerv1.ListQueriesRequest) (*tokenbrokerv1.ListQueriesResponse, error) {
	out := &tokenbrokerv1.ListQueriesResponse{}
	for _, q := range s.broker.Queries(caller(ctx)) {
		nq := &tokenbrokerv1.NamedQuery{Name: q.Name, Apis: q.APIs, Public: q.Public}
		for _, p := range q.Params {
			qp := &tokenbrokerv1.QueryParameter{
				Name: p.Name, BoundTo: p.Bind, Type: string(p.Type), Required: p.Required, Allowed: p.Allowed,
				Pattern: p.Pattern, Min: p.Min, Max: p.Max, MinLength: int32(p.MinLength), MaxLength: int32(p.MaxLength),
			}
			if p.Bind == "" && qp.Type == "" {
				qp.Type = "string"
			}
			if p.Default != nil {
				qp.DefaultValue = *p.Default
			}
			nq.Parameters = append(nq.Parameters, qp)
		}
		out.Queries = append(out.Queries, nq)
	}
	return out, nil
}

// RunQuery runs a named query through the SQL API.
func (s *Service) RunQuery(ctx context.Context, req *tokenbrokerv1.RunQueryRequest) (*tokenbrokerv1.RunQueryResponse, error) {
	p := caller(ctx)
	ev := s.queryEvent(ctx, p, req.GetName())
	if err := checkQueryRequest(req, req.GetParams()); err != nil {
		ev.Detail = ""
		return nil, s.fail(ctx, ev, err)
	}
	rows, err := s.broker.QueryRows(ctx, p, clientHost(ctx), req.GetName(), req.GetParams())
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	// Built once per result: every caller a cached result is served to
	// gets the same answer, which is never changed.
	out, err := rows.Memo.Do(func() (any, error) { return rowsResponse(rows) })
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	ev.Count = len(rows.Rows)
	s.ok(ctx, ev)
	return out.(*tokenbrokerv1.RunQueryResponse), nil
}

func rowsResponse(rows broker.Rows) (*tokenbrokerv1.RunQueryResponse, error) {
	out := &tokenbrokerv1.RunQueryResponse{Columns: make([]*tokenbrokerv1.QueryColumn, len(rows.Columns)), Rows: make([]*structpb.Struct, len(rows.Rows))}
	for i, c := range rows.Columns {
		out.Columns[i] = &tokenbrokerv1.QueryColumn{Name: c.Name, Type: c.Type}
	}
	for i, r := range rows.Rows {
		st, err := structOf(r)
		if err != nil {
			return nil, fmt.Errorf("row %d of CARTO's answer: %w", i, err)
		}
		out.Rows[i] = st
	}
	return out, nil
}

// RunQueryGeoJSON runs a named query through the Maps API.
func (s *Service) RunQueryGeoJSON(ctx context.Context, req *tokenbrokerv1.RunQueryGeoJSONRequest) (*tokenbrokerv1.RunQueryGeoJSONResponse, error) {
	p := caller(ctx)
	ev := s.queryEvent(ctx, p, req.GetName())
	if err := checkQueryRequest(req, req.GetParams()); err != nil {
		ev.Detail = ""
		return nil, s.fail(ctx, ev, err)
	}
	gj, err := s.broker.QueryGeoJSON(ctx, p, clientHost(ctx), req.GetName(), req.GetParams())
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	out, err := gj.Memo.Do(func() (any, error) {
		fc := &structpb.Struct{}
		if err := protojson.Unmarshal(gj.Body, fc); err != nil {
			return nil, fmt.Errorf("CARTO's GeoJSON: %w", err)
		}
		return &tokenbrokerv1.RunQueryGeoJSONResponse{FeatureCollection: fc}, nil
	})
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	resp := out.(*tokenbrokerv1.RunQueryGeoJSONResponse)
	if f := resp.GetFeatureCollection().GetFields()["features"]; f != nil {
		ev.Count = len(f.GetListValue().GetValues())
	}
	s.ok(ctx, ev)
	return resp, nil
}

// checkQueryRequest bounds a run's request before any work: its strings,
// and how many values it supplies.
func checkQueryRequest(req proto.Message, params map[string]string) error {
	if err := checkLengths(req); err != nil {
		return err
	}
	if len(params) > MaxParams {
		return refusal.Newf(broker.ErrInvalidArgument, "params holds %d values, more than %d", len(params), MaxParams)
	}
	return nil
}

// structOf converts a row to a Struct; CARTO's numbers (json.Number, to
// keep them exact until here) become doubles, as JSON numbers are.
func structOf(row map[string]any) (*structpb.Struct, error) {
	fields := make(map[string]*structpb.Value, len(row))
	for k, v := range row {
		val, err := valueOf(v)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", k, err)
		}
		fields[k] = val
	}
	return &structpb.Struct{Fields: fields}, nil
}

func valueOf(v any) (*structpb.Value, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, err
		}
		return structpb.NewNumberValue(f), nil
	case map[string]any:
		st, err := structOf(x)
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(st), nil
	case []any:
		list := &structpb.ListValue{Values: make([]*structpb.Value, len(x))}
		for i, e := range x {
			val, err := valueOf(e)
			if err != nil {
				return nil, err
			}
			list.Values[i] = val
		}
		return structpb.NewListValue(list), nil
	}
	return structpb.NewValue(v)
}

// clientHost is the caller's address without its port: one client, many
// connections.
func clientHost(ctx context.Context) string {
	addr := clientAddr(ctx)
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
