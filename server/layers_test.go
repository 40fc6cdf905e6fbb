package main

import (
	"os/exec"
	"strings"
	"testing"
)

// layers ranks the packages under server/internal, from the leaves up. A
// package imports only packages of lower layers, so no import points up or
// sideways: the domain never reaches for the edge, and app is the one
// package that wires the others. A new package needs a row here.
var layers = map[string]int{
	// Leaves: no import of the module's own packages (but store's of seal).
	"refusal": 0, "seal": 0, "policy": 0, "audit": 0, "metrics": 0, "telemetry": 0,
	"carto": 0, "cartosim": 0, "apidoc": 0, "demopage": 0, "flightcache": 0,
	"clocktest": 0, "logtest": 0, "redistest": 0, "idptest": 0, "grpctest": 0,
	"store": 1, "namedquery": 1,
	// The store's implementations, identity, and the token cache.
	"store/memstore": 2, "store/boltstore": 2, "store/redisstore": 2, "auth": 2, "tokencache": 2,
	// The domain, and the store's conformance suite (over every store).
	"broker": 3, "store/storetest": 3,
	// The edge (adapter, transport) and the configuration that builds the domain's parts.
	"api": 4, "transport": 4, "config": 4, "cartogateway": 4,
	"app": 5,
}

func TestNoUpwardImports(t *testing.T) {
	const internal = "github.com/tokenbroker/tokenbroker/server/internal/"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./internal/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], internal)
		rank, ok := layers[pkg]
		if !ok {
			t.Errorf("package %s has no layer: add it to layers", pkg)
			continue
		}
		seen++
		for _, imp := range f[1:] {
			dep, ok := strings.CutPrefix(imp, internal)
			if !ok {
				continue
			}
			if r, known := layers[dep]; known && r >= rank {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go down only", pkg, rank, dep, r)
			}
		}
	}
	if seen < 20 {
		t.Fatalf("go list named only %d packages: the pattern no longer matches", seen)
	}
}
