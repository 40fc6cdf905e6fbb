// Package cartosim is an in-process emulator of the CARTO 3 cloud APIs, an
// http.Handler that TokenBroker uses for its demo mode and end-to-end tests
// so that nothing needs a CARTO account.
//
// It emulates, following docs/CARTO-API.md:
//
//   - POST /oauth/token: the M2M client-credentials grant of auth.carto.com
//     (an Auth0 tenant), form or JSON bodies, Auth0's error shapes.
//   - /v3/tokens: create, list, get, patch and delete API access tokens,
//     with an OAuth access token only.
//   - /v3/sql/{conn}/query and /v3/maps/{conn}/query, plus the geojson,
//     tilejson and {z}/{x}/{y} follow-ups of a maps instantiation, with an
//     API access token, enforcing allowed_apis, referers and grants.
//   - /_sim/*: control endpoints for stats, faults and the live tokens,
//     for the operator's tools only: they need the control token
//     (Config.ControlToken, random by default) and send no CORS headers.
//
// The data APIs serve one built-in table, a model of CARTO's public
// `carto-demo-data`.demo_tables.retail_stores, on any connection, through a
// small SQL subset (see sqlparse.go) with BigQuery literal rules and named
// @parameters.
//
// Unknowns of docs/CARTO-API.md, and how they are decided here (the other
// choice, where one is plausible, is a Config field away):
//
//   - OAuth tokens are opaque ("sim-oauth-..."), not RS256 JWTs: clients must
//     not read them. An OAuth token presented to a data API is unknown (401).
//   - Create answers 200 (Config.CreateStatus: 201), delete 204
//     (Config.DeleteStatus: 200 with {}), list a bare array
//     (Config.ListWrapped: {"tokens":[...]}).
//   - Quota: 1000 live tokens per client (Config.MaxLiveTokens), answered
//     429 (Config.QuotaStatus: 403) with {error, description}.
//   - The token name field is "name"; names need not be unique.
//     expiration_date is an RFC 3339 string, must be in the future, and
//     cannot be patched (400).
//   - An omitted allowed_apis is stored empty, so every data API refuses the
//     token with 403: callers must list the APIs they need.
//   - Another client's token answers 404, like an unknown one.
//   - An API access token used on the Tokens API answers 401.
//   - Token responses echo the request: token, name, grants, referers,
//     allowed_apis, expiration_date (omitted when none) and created_at.
//   - Data-API errors are {"error", "status"} (plus "description" on 401 and
//     "column_name" on unknown columns); missing, unknown, deleted and
//     expired tokens answer 401; a missing API, a referer mismatch and an
//     ungranted query answer 403.
//   - A grant covers a query if its connection matches and its source is
//     the exact query text (trimmed), "*", the fully qualified table the
//     query reads, or a project.dataset.* style wildcard of it. Query grants
//     match on text only, so @parameters are bound by the caller: this
//     reproduces the unbound-parameter weakness of CARTO's guide on purpose.
//   - Tiles are GeoJSON FeatureCollections, not CARTO's binary tiles or MVT.
//   - No rate limits unless a fault switch is on (Faults).
package cartosim
