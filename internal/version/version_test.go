package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.1.1-0.20261201000000-0123456789ab+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	tests := []struct {
		name                string
		ldVersion, ldCommit string
		bi                  *debug.BuildInfo
		want                string
	}{
		{"linker values win", "v0.1.0", "abc123", vcs("0123456789ab", "true"),
			"tokenbroker v0.1.0 (commit abc123, go1.26.0)"},
		{"build info: module version and VCS", "", "", vcs("0123456789ab", "true"),
			"tokenbroker v0.1.1-0.20261201000000-0123456789ab+dirty (commit 0123456789ab, modified, go1.26.0)"},
		{"build info, clean tree", "", "", vcs("0123456789ab", "false"),
			"tokenbroker v0.1.1-0.20261201000000-0123456789ab+dirty (commit 0123456789ab, go1.26.0)"},
		{"linker version, build info commit", "v0.2.0", "", vcs("fedcba", "false"),
			"tokenbroker v0.2.0 (commit fedcba, go1.26.0)"},
		{"go run or go test: no version, no VCS", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			"tokenbroker devel (commit unknown, go1.26.0)"},
		{"no build info", "", "", nil,
			"tokenbroker devel (commit unknown, " + runtime.Version() + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolve(tt.ldVersion, tt.ldCommit, tt.bi).String("tokenbroker"); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
