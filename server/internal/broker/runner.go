package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/refusal"
)

// CartoData is the part of the CARTO client that runs queries.
type CartoData interface {
	QueryRows(ctx context.Context, req carto.QueryRequest) (carto.Rows, error)
	QueryGeoJSON(ctx context.Context, req carto.QueryRequest) ([]byte, error)
}

// CartoRunner adapts the CARTO client to QueryRunner, and its errors to the
// broker's: a refused token (re-minted once), a refused query (the
// operator's configuration), a result past its limits (the caller's).
type CartoRunner struct{ Carto CartoData }

var _ QueryRunner = CartoRunner{}

func (r CartoRunner) request(q DataQuery) carto.QueryRequest {
	return carto.QueryRequest{Token: q.Token, Connection: q.Connection, SQL: q.SQL, Params: q.Params, MaxRows: q.MaxRows, MaxBytes: q.MaxBytes}
}

// Rows runs q through the SQL API.
func (r CartoRunner) Rows(ctx context.Context, q DataQuery) (Rows, error) {
	res, err := r.Carto.QueryRows(ctx, r.request(q))
	if err != nil {
		return Rows{}, dataError(err)
	}
	out := Rows{Columns: make([]Column, len(res.Columns)), Rows: make([]map[string]any, len(res.Rows)), Bytes: res.Bytes}
	for i, c := range res.Columns {
		out.Columns[i] = Column{Name: c.Name, Type: c.Type}
	}
	for i, row := range res.Rows {
		m := make(map[string]any, len(row))
		for j, v := range row {
			if j < len(res.Columns) {
				m[res.Columns[j].Name] = v
			}
		}
		out.Rows[i] = m
	}
	return out, nil
}

// GeoJSON runs q through the Maps API.
func (r CartoRunner) GeoJSON(ctx context.Context, q DataQuery) ([]byte, error) {
	b, err := r.Carto.QueryGeoJSON(ctx, r.request(q))
	if err != nil {
		return nil, dataError(err)
	}
	return b, nil
}

func dataError(err error) error {
	var le *carto.LimitError
	switch {
	case errors.As(err, &le):
		return refusal.Newf(ErrResultTooLarge, "the result passes the query's %s of %d; narrow it with its parameters", le.Limit, le.Value)
	case errors.Is(err, carto.ErrTokenRefused):
		return fmt.Errorf("%w: %w", ErrTokenRefused, err)
	case errors.Is(err, carto.ErrRejected):
		return fmt.Errorf("%w: %w", ErrQueryRejected, err)
	}
	return err
}
