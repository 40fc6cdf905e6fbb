package cartosim

import (
	"bytes"
	"strconv"
)

type schemaField struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func schemaOf(cols []column) []schemaField {
	out := []schemaField{}
	for _, c := range cols {
		out = append(out, schemaField{c.name, c.typ.schemaType()})
	}
	return out
}

// orderedObject is a JSON object that keeps its keys in column order.
type orderedObject struct {
	keys []string
	vals []any
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type sqlMeta struct {
	CacheHit            bool   `json:"cacheHit"`
	Location            string `json:"location"`
	TotalBytesProcessed string `json:"totalBytesProcessed"`
}

type sqlResult struct {
	Meta   sqlMeta         `json:"meta"`
	Rows   []orderedObject `json:"rows"`
	Schema []schemaField   `json:"schema"`
}

func sqlResponse(rs *resultSet) sqlResult {
	res := sqlResult{
		Meta:   sqlMeta{Location: "US", TotalBytesProcessed: strconv.FormatInt(rs.bytes, 10)},
		Rows:   []orderedObject{},
		Schema: schemaOf(rs.cols),
	}
	keys := make([]string, len(rs.cols))
	for i, c := range rs.cols {
		keys[i] = c.name
	}
	for _, row := range rs.rows {
		res.Rows = append(res.Rows, orderedObject{keys: keys, vals: row})
	}
	return res
}

type urlList struct {
	URL []string `json:"url"`
}

type mapsInstantiation struct {
	NRows    int           `json:"nrows"`
	Size     int           `json:"size"`
	Schema   []schemaField `json:"schema"`
	TileJSON urlList       `json:"tilejson"`
	GeoJSON  urlList       `json:"geojson"`
}

type feature struct {
	Type       string        `json:"type"`
	Geometry   any           `json:"geometry"`
	Properties orderedObject `json:"properties"`
}

type featureCollectionDoc struct {
	Type     string    `json:"type"`
	Features []feature `json:"features"`
}

// geomIndex is the result column rendered as the feature geometry: geom if
// selected, else the first geography column, else -1.
func geomIndex(cols []column) int {
	first := -1
	for i, c := range cols {
		if c.typ == colGeo {
			if c.name == "geom" {
				return i
			}
			if first < 0 {
				first = i
			}
		}
	}
	return first
}

// featureCollection renders rows as GeoJSON; keep, if not nil, filters by
// geometry (rows without one are then dropped).
func featureCollection(rs *resultSet, keep func(point) bool) featureCollectionDoc {
	fc := featureCollectionDoc{Type: "FeatureCollection", Features: []feature{}}
	gi := geomIndex(rs.cols)
	var keys []string
	for i, c := range rs.cols {
		if i != gi {
			keys = append(keys, c.name)
		}
	}
	for _, row := range rs.rows {
		f := feature{Type: "Feature", Properties: orderedObject{keys: keys}}
		if gi >= 0 {
			pt := row[gi].(point)
			if keep != nil && !keep(pt) {
				continue
			}
			f.Geometry = pt
		} else if keep != nil {
			continue
		}
		for i, v := range row {
			if i != gi {
				f.Properties.vals = append(f.Properties.vals, v)
			}
		}
		fc.Features = append(fc.Features, f)
	}
	return fc
}
