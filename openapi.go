// Package tokenbroker holds what the broker serves about its own API: the
// OpenAPI (Swagger 2.0) document generated from the proto by buf, in gen/.
package tokenbroker

import _ "embed"

// OpenAPI is the REST API's OpenAPI document, served at /openapi.json.
//
//go:embed gen/openapi/tokenbroker/v1/tokenbroker.swagger.json
var OpenAPI []byte
