package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// versionLine is --version's output: tokenbroker <version> (commit <rev>[, modified], <go version>).
var versionLine = regexp.MustCompile(`^tokenbroker (\S+) \(commit (\S+?)(, modified)?, (go\S+)\)\n$`)

func TestVersionFlag(t *testing.T) {
	for _, args := range []string{"--version", "-version", "--demo --version"} {
		code, stdout, stderr := runMain(t, args)
		if code != 0 || !versionLine.MatchString(stdout) || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestHelpListsVersion(t *testing.T) {
	code, stdout, _ := runMain(t, "-h")
	if code != 0 || !strings.Contains(stdout, "  -version\n") {
		t.Fatalf("exit %d, -h does not list -version:\n%s", code, stdout)
	}
}

// TestVersionFromLinker builds the server as the README's "Building and
// versions" says, with its VERSION, PKG and LDFLAGS lines (the version
// replaced, and without -trimpath, which would rebuild every package), and
// runs its --version.
func TestVersionFromLinker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout (the README's command needs one): %v", err)
	}
	block := section(t, readme(t), "Building and versions")
	start := strings.Index(block, "```sh\n")
	end := strings.Index(block[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal(`README's "Building and versions" has no sh block`)
	}
	bin := filepath.Join(t.TempDir(), "tokenbroker")
	var script strings.Builder
	built := false
	for _, line := range strings.Split(block[start+6:start+6+end], "\n") {
		switch {
		case strings.HasPrefix(line, "VERSION="):
			script.WriteString("VERSION=v9.8.7\n")
		case strings.HasPrefix(line, "PKG="), strings.HasPrefix(line, "LDFLAGS="):
			script.WriteString(line + "\n")
		case strings.HasPrefix(line, "go build ") && strings.HasSuffix(line, "-o tokenbroker ./server"):
			line = strings.Replace(line, "-trimpath ", "", 1)
			script.WriteString(strings.TrimSuffix(line, "-o tokenbroker ./server") + "-o " + bin + " ./server\n")
			built = true
		}
	}
	if !built {
		t.Fatalf("the README builds no tokenbroker:\n%s", block)
	}
	build := exec.Command("bash", "-euc", script.String())
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script.String(), err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := versionLine.FindStringSubmatch(string(out))
	if m == nil || m[1] != "v9.8.7" || m[2] != strings.TrimSpace(string(head)) || m[3] != "" {
		t.Fatalf("--version printed %q", out)
	}
	t.Logf("%s", out)
}
