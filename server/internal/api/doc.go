// Package api adapts the broker to the tokenbroker.v1 gRPC contract:
//
//   - service.go: the Service, which converts messages, reads the caller
//     from the context, writes an audit event per call and counts what it
//     does (Recorder);
//   - status.go: the one mapping from domain errors to what a caller is
//     told (Status), which tells a refusal's own message and a fixed one
//     for anything else, and logs what the caller is not told;
//   - limits.go: the bounds of every string of every request, checked
//     before any work.
//
// Who may call each method is transport's access table; the REST gateway
// serves this same Service, so both transports answer alike.
package api
