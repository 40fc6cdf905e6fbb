// Package apidoc serves the REST API's OpenAPI (Swagger 2.0) document. buf
// generates it from the proto into openapi/ (see buf.gen.yaml); it is embedded
// here so the binary serves the document it was built with.
package apidoc

import (
	_ "embed"
	"net/http"
)

//go:embed openapi/tokenbroker/v1/tokenbroker.swagger.json
var document []byte

// Document returns the OpenAPI document.
func Document() []byte { return document }

// Handler serves the document as application/json.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(document)
	})
}
