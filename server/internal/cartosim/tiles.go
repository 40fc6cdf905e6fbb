package cartosim

import (
	"math"
	"strconv"
)

type vectorLayer struct {
	ID      string            `json:"id"`
	MinZoom int               `json:"minzoom"`
	MaxZoom int               `json:"maxzoom"`
	Fields  map[string]string `json:"fields"`
}

type tileJSONDoc struct {
	TileJSON     string        `json:"tilejson"`
	Scheme       string        `json:"scheme"`
	Tiles        []string      `json:"tiles"`
	MinZoom      int           `json:"minzoom"`
	MaxZoom      int           `json:"maxzoom"`
	Bounds       [4]float64    `json:"bounds"`
	Center       [3]float64    `json:"center"`
	VectorLayers []vectorLayer `json:"vector_layers"`
	Schema       []schemaField `json:"schema"`
}

const maxTileZoom = 14

// tileJSONOf describes the result as a TileJSON 3.0.0 document.
func tileJSONOf(rs *resultSet, tiles string) tileJSONDoc {
	doc := tileJSONDoc{
		TileJSON: "3.0.0",
		Scheme:   "xyz",
		Tiles:    []string{tiles},
		MaxZoom:  maxTileZoom,
		Bounds:   [4]float64{-180, -85.0511, 180, 85.0511},
		Schema:   schemaOf(rs.cols),
	}
	layer := vectorLayer{ID: "default", MaxZoom: maxTileZoom, Fields: map[string]string{}}
	gi := geomIndex(rs.cols)
	for i, c := range rs.cols {
		if i == gi {
			continue
		}
		if c.typ == colString {
			layer.Fields[c.name] = "String"
		} else {
			layer.Fields[c.name] = "Number"
		}
	}
	doc.VectorLayers = []vectorLayer{layer}
	if gi < 0 || len(rs.rows) == 0 {
		return doc
	}
	w, s, e, n := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, row := range rs.rows {
		p := row[gi].(point)
		w, s, e, n = min(w, p.lon), min(s, p.lat), max(e, p.lon), max(n, p.lat)
	}
	doc.Bounds = [4]float64{w, s, e, n}
	zoom := float64(12) // a single point
	if span := max(e-w, n-s); span > 0 {
		zoom = math.Max(0, math.Min(maxTileZoom, math.Floor(math.Log2(360/span))))
	}
	doc.Center = [3]float64{(w + e) / 2, (s + n) / 2, zoom}
	return doc
}

// tileBounds is the lon/lat extent of a web-mercator (XYZ) tile.
type tileBounds struct {
	west, south, east, north float64
	lastX, lastY             bool // edge tiles include their far edge
}

func parseTile(zs, xs, ys string) (tileBounds, bool) {
	z, err1 := strconv.Atoi(zs)
	x, err2 := strconv.Atoi(xs)
	y, err3 := strconv.Atoi(ys)
	if err1 != nil || err2 != nil || err3 != nil || z < 0 || z > 24 {
		return tileBounds{}, false
	}
	n := 1 << z
	if x < 0 || y < 0 || x >= n || y >= n {
		return tileBounds{}, false
	}
	lat := func(y int) float64 {
		return math.Atan(math.Sinh(math.Pi*(1-2*float64(y)/float64(n)))) * 180 / math.Pi
	}
	return tileBounds{
		west:  float64(x)/float64(n)*360 - 180,
		east:  float64(x+1)/float64(n)*360 - 180,
		north: lat(y),
		south: lat(y + 1),
		lastX: x == n-1,
		lastY: y == n-1,
	}, true
}

func (t tileBounds) contains(p point) bool {
	inX := p.lon >= t.west && (p.lon < t.east || (t.lastX && p.lon <= t.east))
	inY := p.lat <= t.north && (p.lat > t.south || (t.lastY && p.lat >= t.south))
	return inX && inY
}
