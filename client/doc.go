// Package client is the Go client of TokenBroker (the gRPC service
// tokenbroker.v1.TokenBroker) for internal services and tools.
//
// A [Client] signs in (with a username and password, with a bearer token it
// is given, or as a service with a TLS client certificate), fetches the CARTO
// API access token of its group and keeps it until shortly before it
// expires, so callers may ask for it on every request:
//
//	c, err := client.New(ctx, client.Config{
//		Addr:     "localhost:9090",
//		Username: "user.boston@acme.com",
//		Password: password,
//	})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	tok, err := c.CartoToken(ctx) // logs in on first use; cached afterwards
//	if err != nil {
//		return err
//	}
//	req.Header.Set("Authorization", "Bearer "+tok.Token) // to CARTO's APIs
//
// # Named queries
//
// The broker also runs the named queries of its configuration itself, with
// a CARTO token it never hands out: [Client.Queries] lists those the caller
// may run, with their parameters; [Client.Query] returns a query's rows
// (through CARTO's SQL API) and [Client.QueryGeoJSON] its GeoJSON
// FeatureCollection (through the Maps API), given the values of its
// parameters as text. Parameters bound to the caller's identity (its group,
// say) are filled in by the broker and cannot be supplied:
//
//	res, err := c.Query(ctx, "my-stores", map[string]string{"storetype": "Drugstore"})
//	for _, row := range res.Rows { // column name to value
//		fmt.Println(row["store_id"], row["address"])
//	}
//
// A client without credentials (a Config with only Addr, and TLS when
// needed) runs the public queries, which the broker bounds per client
// address (RESOURCE_EXHAUSTED past the bound, not retried).
//
// # Credentials
//
// The bearer (a session made by [Client.Login], or [Config.Token]) is
// attached to each call as `authorization: Bearer <token>` through a
// [google.golang.org/grpc/credentials.PerRPCCredentials] that does not require
// transport security, so that a broker on loopback can be reached in
// plaintext. Across a network, set [Config.TLS]: without it the bearer is
// readable on the wire. A service that authenticates with a client
// certificate sets [Config.TLS] with Certificates and [Config.Group], and
// no bearer.
//
// Credentials are never logged by this package and never appear in the
// errors it returns; [Session], [CartoToken] and [RevokeTarget] print their
// token values redacted (with fmt and log/slog).
//
// # Errors and retries
//
// Errors of calls to the broker carry their gRPC status:
// [google.golang.org/grpc/status.FromError] and
// [google.golang.org/grpc/status.Code] work on them. Errors the client
// detects itself (a revoke target that is empty, say) are statuses too, with
// messages starting "client:". Calls that fail UNAVAILABLE are retried (see
// [Config.MaxRetries]) within the deadline of the caller's context; no
// other code is retried. A call made with a session from Login that fails
// UNAUTHENTICATED because the session expired logs in again once and is
// retried.
//
// A Client is safe for concurrent use.
package client
