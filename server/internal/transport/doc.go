// Package transport serves the TokenBroker over gRPC and REST:
//
//   - access.go: who may call each method (public, authenticated, admin),
//     one table;
//   - chain.go: the interceptor chain both transports run, as NewChain
//     builds it: recovery outermost (a panic becomes INTERNAL without
//     details); for streams, their end when the server drains; the request
//     id; metrics when configured (before authentication, so refusals are
//     counted); the request log (not for health and reflection); and
//     authentication, by bearer token or client certificate, for every
//     method the access table does not make public;
//   - grpc.go: the gRPC server, with health and reflection, its message and
//     header bounds, and the bounds on open health Watch and reflection
//     streams (inside the chain);
//   - gateway.go: the REST/JSON gateway, which calls the service in process
//     for speed through a wrapper that runs every call through the same
//     chain, behind a body size limit, CORS and the client's address as the
//     gRPC peer.
//
// No route reaches the service around the chain. The package knows no
// domain error: how an error becomes a status is passed in
// (ChainConfig.ErrorStatus).
package transport
