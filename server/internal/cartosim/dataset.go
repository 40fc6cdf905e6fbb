package cartosim

// colType is the type of a column of the built-in table.
type colType uint8

const (
	colInt colType = iota
	colFloat
	colString
	colGeo
)

// schemaType is the CARTO schema type reported in "schema" arrays.
func (t colType) schemaType() string {
	switch t {
	case colInt, colFloat:
		return "number"
	case colGeo:
		return "geography"
	default:
		return "string"
	}
}

// sqlType is the BigQuery type name, used in type-mismatch errors.
func (t colType) sqlType() string {
	switch t {
	case colInt:
		return "INT64"
	case colFloat:
		return "FLOAT64"
	case colGeo:
		return "GEOGRAPHY"
	default:
		return "STRING"
	}
}

type column struct {
	name string
	typ  colType
}

// point is a WGS84 longitude/latitude pair.
type point struct{ lon, lat float64 }

// table is an in-memory table. Cells are int64, float64, string or point,
// matching the column types. A table is never modified after construction.
type table struct {
	name string // fully qualified, without backticks
	cols []column
	rows [][]any
}

// retailStoresName is the canonical name of the demo table.
const retailStoresName = "carto-demo-data.demo_tables.retail_stores"

// retailStores builds the demo table, modelled on CARTO's public
// retail_stores table. It is a function, not a package variable, so that
// there is no package-level mutable state; each Sim holds its own copy.
// O'FALLON (Missouri) is there to exercise quote escaping in literals.
func retailStores() *table {
	type store struct {
		id, storetype, address, city, state, zip string
		revenue, size                            float64
		lon, lat                                 float64
	}
	stores := []store{
		{"1001", "Supermarket", "181 Cambridge St", "BOSTON", "MA", "02114", 1843250.50, 2150, -71.0658, 42.3610},
		{"1002", "Supermarket", "60 Everett St", "BOSTON", "MA", "02134", 1520340.00, 1980, -71.1377, 42.3573},
		{"1003", "Convenience Store", "1065 Commonwealth Ave", "BOSTON", "MA", "02215", 412870.25, 310, -71.1313, 42.3513},
		{"1004", "Supermarket", "33 Kilmarnock St", "BOSTON", "MA", "02215", 2210900.00, 2640, -71.0990, 42.3447},
		{"1005", "Department Store", "587 Washington St", "BOSTON", "MA", "02111", 3105600.75, 5200, -71.0627, 42.3530},
		{"1006", "Drugstore", "699 Boylston St", "BOSTON", "MA", "02116", 689120.00, 540, -71.0810, 42.3497},
		{"2001", "Supermarket", "225 Varick St", "NEW YORK", "NY", "10014", 2480300.00, 2300, -74.0054, 40.7284},
		{"2002", "Department Store", "151 W 34th St", "NEW YORK", "NY", "10001", 5120450.50, 9800, -73.9890, 40.7506},
		{"2003", "Supermarket", "808 Columbus Ave", "NEW YORK", "NY", "10025", 1975220.00, 2050, -73.9637, 40.7986},
		{"2004", "Drugstore", "1 Penn Plaza", "NEW YORK", "NY", "10119", 845300.00, 620, -73.9924, 40.7510},
		{"2005", "Discount Store", "4 Union Square S", "NEW YORK", "NY", "10003", 1302775.25, 1450, -73.9905, 40.7345},
		{"2006", "Convenience Store", "250 W 57th St", "NEW YORK", "NY", "10107", 398410.00, 280, -73.9825, 40.7660},
		{"3001", "Supermarket", "1 W Jackson Blvd", "CHICAGO", "IL", "60604", 1688000.00, 1900, -87.6279, 41.8781},
		{"3002", "Discount Store", "1500 N Clybourn Ave", "CHICAGO", "IL", "60610", 1210540.00, 2600, -87.6493, 41.9096},
		{"3003", "Drugstore", "2550 N Clark St", "CHICAGO", "IL", "60614", 702300.50, 590, -87.6424, 41.9289},
		{"4001", "Department Store", "735 S Figueroa St", "LOS ANGELES", "CA", "90017", 2875400.00, 6100, -118.2600, 34.0480},
		{"4002", "Convenience Store", "6801 Hollywood Blvd", "LOS ANGELES", "CA", "90028", 455780.00, 350, -118.3387, 34.1016},
		{"4003", "Discount Store", "3535 S La Cienega Blvd", "LOS ANGELES", "CA", "90016", 1534210.75, 3100, -118.3720, 34.0219},
		{"5001", "Supermarket", "789 Mission St", "SAN FRANCISCO", "CA", "94103", 2040100.00, 1750, -122.4036, 37.7845},
		{"5002", "Drugstore", "2001 Market St", "SAN FRANCISCO", "CA", "94114", 768900.00, 510, -122.4275, 37.7688},
		{"6001", "Supermarket", "400 Pine St", "SEATTLE", "WA", "98101", 1790650.00, 2000, -122.3380, 47.6122},
		{"6002", "Convenience Store", "1401 Broadway", "SEATTLE", "WA", "98122", 366200.50, 260, -122.3206, 47.6136},
		{"6003", "Discount Store", "4555 Roosevelt Way NE", "SEATTLE", "WA", "98105", 1122340.00, 2400, -122.3177, 47.6627},
		{"7001", "Supermarket", "401 Biscayne Blvd", "MIAMI", "FL", "33132", 1655430.00, 1820, -80.1873, 25.7782},
		{"7002", "Department Store", "3401 N Miami Ave", "MIAMI", "FL", "33127", 2390700.25, 5400, -80.1954, 25.8082},
		{"8001", "Supermarket", "1090 W Terra Ln", "O'FALLON", "MO", "63366", 1402880.00, 1700, -90.7265, 38.8006},
		{"8002", "Drugstore", "2245 Highway K", "O'FALLON", "MO", "63368", 610450.00, 480, -90.7098, 38.7641},
	}
	t := &table{
		name: retailStoresName,
		cols: []column{
			{"cartodb_id", colInt},
			{"store_id", colString},
			{"storetype", colString},
			{"address", colString},
			{"city", colString},
			{"state", colString},
			{"zip", colString},
			{"revenue", colFloat},
			{"size_m2", colFloat},
			{"geom", colGeo},
		},
	}
	for i, s := range stores {
		t.rows = append(t.rows, []any{
			int64(i + 1), s.id, s.storetype, s.address, s.city, s.state, s.zip,
			s.revenue, s.size, point{s.lon, s.lat},
		})
	}
	return t
}

// Rows returns the built-in table's rows, column name to value (geometries
// as [lon, lat]), for tests that check what a query should have returned.
func (s *Sim) Rows() []map[string]any {
	out := make([]map[string]any, 0, len(s.data.rows))
	for _, r := range s.data.rows {
		m := make(map[string]any, len(s.data.cols))
		for i, c := range s.data.cols {
			v := r[i]
			if p, ok := v.(point); ok {
				v = [2]float64{p.lon, p.lat}
			}
			m[c.name] = v
		}
		out = append(out, m)
	}
	return out
}
