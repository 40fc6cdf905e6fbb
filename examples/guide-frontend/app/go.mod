// This folder is a JavaScript project, not Go. The go.mod makes it a module of
// its own, so that the repository's `go ... ./...` never walks into
// node_modules (the go tool ignores testdata, _x and .x folders, not
// node_modules, and some npm packages ship .go files).
module tokenbroker.example/guidefrontendapp
