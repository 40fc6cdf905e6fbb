package cartosim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
)

// resultSet is the outcome of a query.
type resultSet struct {
	cols  []column
	rows  [][]any
	bytes int64 // an estimate of BigQuery's totalBytesProcessed
}

type valueKind uint8

const (
	vString valueKind = iota
	vNumber
	vBool
	vNull
)

// sqlValue is a literal or a bound parameter.
type sqlValue struct {
	kind valueKind
	s    string
	n    float64
}

func (v sqlValue) sqlType() string {
	switch v.kind {
	case vString:
		return "STRING"
	case vBool:
		return "BOOL"
	case vNull:
		return "NULL"
	}
	if v.n == math.Trunc(v.n) {
		return "INT64"
	}
	return "FLOAT64"
}

// execute runs st against t. params are the decoded queryParameters
// (json.Number for numbers). Errors are *sqlError.
func (t *table) execute(st *selectStmt, params map[string]any) (*resultSet, error) {
	q, err := t.plan(st, params)
	if err != nil {
		return nil, err
	}
	return t.run(q), nil
}

// queryPlan is a statement resolved against a table: column indexes and bound
// values.
type queryPlan struct {
	proj  []int // the columns returned, in order
	conds []boundCond
	order int // the ORDER BY column, -1 if none
	desc  bool
	limit int64 // -1 when absent
	used  []int // every column referenced, which BigQuery bills
}

// plan resolves every column of st and binds its values first, so that
// errors do not depend on the data.
func (t *table) plan(st *selectStmt, params map[string]any) (*queryPlan, error) {
	if !strings.EqualFold(strings.Join(st.Table, "."), t.name) {
		return nil, &sqlError{status: http.StatusNotFound, msg: "Table not found"}
	}
	q := &queryPlan{order: -1, desc: st.Desc, limit: st.Limit}
	if st.Columns == nil {
		for i := range t.cols {
			q.proj = append(q.proj, i)
		}
	}
	for _, c := range st.Columns {
		i, err := t.colIndex(c)
		if err != nil {
			return nil, err
		}
		q.proj = append(q.proj, i)
	}
	q.used = slices.Clone(q.proj)
	for _, c := range st.Where {
		bc, err := t.bindCondition(c, params)
		if err != nil {
			return nil, err
		}
		q.conds = append(q.conds, bc)
		q.used = append(q.used, bc.col)
	}
	if st.OrderBy != "" {
		i, err := t.colIndex(st.OrderBy)
		if err != nil {
			return nil, err
		}
		if t.cols[i].typ == colGeo {
			return nil, badSQL("ORDER BY does not support expressions of type GEOGRAPHY")
		}
		q.order = i
		q.used = append(q.used, i)
	}
	return q, nil
}

// bindCondition resolves the column of c and binds its values.
func (t *table) bindCondition(c condition, params map[string]any) (boundCond, error) {
	i, err := t.colIndex(c.Column)
	if err != nil {
		return boundCond{}, err
	}
	bc := boundCond{col: i, op: c.Op}
	for _, o := range c.Values {
		v, err := bindOperand(o, params)
		if err != nil {
			return boundCond{}, err
		}
		if err := checkComparable(t.cols[i], c.Op, v); err != nil {
			return boundCond{}, err
		}
		bc.vals = append(bc.vals, v)
	}
	return bc, nil
}

// run filters, orders, limits and projects the table's rows as q says.
func (t *table) run(q *queryPlan) *resultSet {
	var rows [][]any
	for _, row := range t.rows {
		if !slices.ContainsFunc(q.conds, func(c boundCond) bool { return !c.matches(row[c.col]) }) {
			rows = append(rows, row)
		}
	}
	if q.order >= 0 {
		slices.SortStableFunc(rows, func(a, b []any) int {
			r := compareCells(a[q.order], b[q.order])
			if q.desc {
				return -r
			}
			return r
		})
	}
	if q.limit >= 0 && int64(len(rows)) > q.limit {
		rows = rows[:q.limit]
	}
	rs := &resultSet{}
	for _, i := range q.proj {
		rs.cols = append(rs.cols, t.cols[i])
	}
	for _, row := range rows {
		out := make([]any, len(q.proj))
		for j, i := range q.proj {
			out[j] = row[i]
		}
		rs.rows = append(rs.rows, out)
	}
	// BigQuery bills the columns referenced, over the whole table.
	used := slices.Clone(q.used)
	slices.Sort(used)
	for _, i := range slices.Compact(used) {
		for _, row := range t.rows {
			rs.bytes += cellBytes(row[i])
		}
	}
	return rs
}

func (t *table) colIndex(name string) (int, error) {
	for i, c := range t.cols {
		if strings.EqualFold(c.name, name) {
			return i, nil
		}
	}
	return -1, &sqlError{status: http.StatusBadRequest, msg: "Column not found: " + name, column: name}
}

// bindOperand turns an operand into a value, looking parameters up in
// params (BigQuery parameter names are case-insensitive).
func bindOperand(o operand, params map[string]any) (sqlValue, error) {
	switch o.Kind {
	case opString:
		return sqlValue{kind: vString, s: o.Str}, nil
	case opNumber:
		return sqlValue{kind: vNumber, n: o.Num}, nil
	}
	raw, ok := params[o.Param]
	if !ok {
		for k, v := range params {
			if strings.EqualFold(k, o.Param) {
				raw, ok = v, true
				break
			}
		}
	}
	if !ok {
		return sqlValue{}, badSQL("Query parameter '%s' not found", o.Param)
	}
	switch v := raw.(type) {
	case string:
		return sqlValue{kind: vString, s: v}, nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return sqlValue{}, badSQL("Query parameter '%s' is not a valid number", o.Param)
		}
		return sqlValue{kind: vNumber, n: f}, nil
	case float64:
		return sqlValue{kind: vNumber, n: v}, nil
	case bool:
		return sqlValue{kind: vBool}, nil
	case nil:
		return sqlValue{kind: vNull}, nil
	}
	return sqlValue{}, badSQL("Query parameter '%s' must be a string, number, boolean or null", o.Param)
}

// checkComparable rejects comparisons BigQuery has no signature for.
func checkComparable(c column, op string, v sqlValue) error {
	ok := v.kind == vNull ||
		(c.typ == colString && v.kind == vString) ||
		((c.typ == colInt || c.typ == colFloat) && v.kind == vNumber)
	if ok {
		return nil
	}
	return badSQL("No matching signature for operator %s for argument types: %s, %s", op, c.typ.sqlType(), v.sqlType())
}

// boundCond is a WHERE condition with its column and values resolved.
type boundCond struct {
	col  int
	op   string
	vals []sqlValue
}

// matches applies SQL semantics: a NULL value never matches, not even !=.
func (c boundCond) matches(cell any) bool {
	switch c.op {
	case "!=":
		return c.vals[0].kind != vNull && !cellEquals(cell, c.vals[0])
	default: // "=" and "IN"
		return slices.ContainsFunc(c.vals, func(v sqlValue) bool { return cellEquals(cell, v) })
	}
}

func cellEquals(cell any, v sqlValue) bool {
	switch x := cell.(type) {
	case string:
		return v.kind == vString && x == v.s
	case int64:
		return v.kind == vNumber && float64(x) == v.n
	case float64:
		return v.kind == vNumber && x == v.n
	}
	return false
}

func compareCells(a, b any) int {
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case int64:
		return cmp.Compare(x, b.(int64))
	case float64:
		return cmp.Compare(x, b.(float64))
	}
	return 0
}

func cellBytes(cell any) int64 {
	switch x := cell.(type) {
	case string:
		return int64(len(x)) + 2
	case point:
		return 21 // a WKB point
	}
	return 8
}

// MarshalJSON renders a point as a GeoJSON geometry, as CARTO does for
// geography columns in SQL API rows.
func (p point) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"type":"Point","coordinates":[%s,%s]}`, jsonFloat(p.lon), jsonFloat(p.lat)), nil
}

func jsonFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
