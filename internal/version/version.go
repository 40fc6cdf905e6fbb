// Package version says which build of TokenBroker is running, for the
// server's and the CLI's --version.
//
// It lives in the module root's internal/ so that both the server
// (server/, whose own internal packages client/ may not import) and the CLI
// (client/cmd/tokenbroker-cli) can use it, without making it part of the
// module's public API (the Go client, client/).
//
// A release build sets the version and commit with the linker:
//
//	go build -ldflags "-X github.com/tokenbroker/tokenbroker/internal/version.version=v0.1.0 \
//	  -X github.com/tokenbroker/tokenbroker/internal/version.commit=$(git rev-parse HEAD)" \
//	  -o tokenbroker ./server
//
// Without them, the build info the go command records is used: the main
// module's version (a tag, or a pseudo-version, when built with go build or
// go install from a git checkout or a module), vcs.revision and vcs.modified.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags "-X …"; empty otherwise.
var (
	version string
	commit  string
)

// Info is a build's version.
type Info struct {
	Version   string // e.g. v0.1.0; "devel" when unknown
	Commit    string // the VCS revision; "unknown" when unknown
	Modified  bool   // built from a working tree with uncommitted changes
	GoVersion string // the Go toolchain that built it, e.g. go1.26.0
}

// Get returns this binary's version.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, bi)
}

// resolve prefers the linker's values, then the build info's, field by field.
func resolve(ldVersion, ldCommit string, bi *debug.BuildInfo) Info {
	info := Info{Version: ldVersion, Commit: ldCommit, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if info.Version == "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if info.Commit == "" {
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					info.Commit = s.Value
				case "vcs.modified":
					info.Modified = s.Value == "true"
				}
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// String is the line --version prints for program:
//
//	tokenbroker v0.1.0 (commit 0123abc…, modified, go1.26.0)
func (i Info) String(program string) string {
	mod := ""
	if i.Modified {
		mod = ", modified"
	}
	return fmt.Sprintf("%s %s (commit %s%s, %s)", program, i.Version, i.Commit, mod, i.GoVersion)
}
