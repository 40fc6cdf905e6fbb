package main

// The README's tests: its cookbook runs, and its security table names tests
// that exist. Its configuration table is checked against the table of
// settings by the config package (TestConfigurationReference).

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section returns the body of the README section headed title, up to the
// next section.
func section(t *testing.T, doc, title string) string {
	t.Helper()
	i := strings.Index(doc, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", title)
	}
	rest := doc[i+len(title)+5:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// tool finds a command on PATH or in GOBIN, or skips (fails under CI).
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := name + " is not installed: `go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4` (.ci/run does)"
	if os.Getenv("TOKENBROKER_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestCookbook runs the README's grpcurl cookbook, line by line in one
// shell, against a demo broker (its ports put in place of the default
// ones). A line marked "# fails: X" must fail with X; every other must
// succeed.
func TestCookbook(t *testing.T) {
	lines, want, outputs, dir := runShellBlock(t, "grpcurl cookbook")
	vars, _ := os.ReadFile(dir + "/vars")
	if f := strings.Fields(string(vars)); len(f) != 3 || slices.Contains(f, "0") {
		t.Errorf("TOKEN, CARTO, ADMIN lengths %q: a command did not yield a token", vars)
	}
	for i, line := range lines {
		checks := map[string]string{"ListTokens": "maskedToken", "/readyz": `"status":"ready"`, "/metrics": "grpc_server_handled_total", "x-request-id": "my-trace-42"}
		for cue, wantOut := range checks {
			if strings.Contains(line, cue) && want[i] == "" && !strings.Contains(outputs[i], wantOut) && !(cue == "ListTokens" && strings.Contains(line, "$TOKEN")) {
				t.Errorf("line %d output lacks %q: %s", i+1, wantOut, line)
			}
		}
	}
}

// TestNamedQueriesExample runs the README's named-query example against a
// demo broker and checks what each line answers.
func TestNamedQueriesExample(t *testing.T) {
	lines, _, outputs, _ := runShellBlock(t, "Named queries")
	// A cue picks the lines that hold line (that end with it, for atEnd).
	cues := []struct {
		line, want, not string
		atEnd           bool
	}{
		{line: "8000/v1/queries", want: `"stores-by-city"`, not: `"my-stores"`, atEnd: true},
		{line: "city=CHICAGO&storetype=Drugstore", want: `"store_id":"3003"`},
		{line: "/geojson?city=MIAMI", want: `"FeatureCollection"`, not: "NEW YORK"},
		{line: "my-stores?storetype=Drugstore", want: `"store_id":"1006"`, not: "NEW YORK"},
		{line: "my-stores?city=CHICAGO", want: "parameter city is the caller's group"},
		{line: "TokenBroker/RunQuery", want: `"SEATTLE"`, not: "FeatureCollection", atEnd: true},
		{line: "RunQueryGeoJSON", want: `"BOSTON"`, not: "NEW YORK"},
	}
	for _, c := range cues {
		found := false
		for i, line := range lines {
			if !strings.Contains(line, c.line) || (c.atEnd && !strings.HasSuffix(line, c.line)) {
				continue
			}
			found = true
			out := strings.ReplaceAll(strings.ReplaceAll(outputs[i], "\n", ""), " ", "")
			want, not := strings.ReplaceAll(c.want, " ", ""), strings.ReplaceAll(c.not, " ", "")
			if !strings.Contains(out, want) || (not != "" && strings.Contains(out, not)) {
				t.Errorf("line %d: output lacks %q or holds %q: %s\n%s", i+1, c.want, c.not, line, outputs[i])
			}
		}
		if !found {
			t.Errorf("no line of the example holds %q", c.line)
		}
	}
	for i, out := range outputs {
		if strings.Contains(out, "SELECT") {
			t.Errorf("line %d shows the SQL: %s", i+1, out)
		}
	}
}

// runShellBlock runs the first sh block of a README section line by line in
// one shell against a demo broker (its ports put in place of the default
// ones), and returns the lines, what each was marked to fail with ("# fails:
// X"), their output, and the folder of the run. A line that fails unmarked,
// or succeeds marked, fails t.
func runShellBlock(t *testing.T, heading string) (lines, want, outputs []string, dir string) {
	t.Helper()
	grpcurl := tool(t, "grpcurl")
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	block := section(t, readme(t), heading)
	start := strings.Index(block, "```sh\n")
	end := strings.Index(block[start+6:], "```")
	lines = strings.Split(strings.TrimSpace(block[start+6:start+6+end]), "\n")

	b := brokertest.Start(t)
	rest, _ := url.Parse(b.RESTURL)
	dir = t.TempDir()
	var script strings.Builder
	script.WriteString("PATH=" + filepath.Dir(grpcurl) + ":$PATH\n")
	want = make([]string, len(lines))
	for i, line := range lines {
		cmd := line
		if j := strings.Index(line, "# fails: "); j >= 0 {
			cmd, want[i] = strings.TrimSpace(line[:j]), strings.TrimSpace(line[j+len("# fails: "):])
		} else if j := strings.Index(line, "  # "); j >= 0 {
			cmd = strings.TrimSpace(line[:j]) // a comment for the reader
		}
		cmd = strings.ReplaceAll(cmd, "localhost:9090", b.GRPCAddr)
		cmd = strings.ReplaceAll(cmd, "localhost:8000", rest.Host)
		fmt.Fprintf(&script, "{ %s ; } >%s/out%d 2>%s/err%d; echo $? >%s/rc%d\n", cmd, dir, i, dir, i, dir, i)
	}
	fmt.Fprintf(&script, "echo ${#TOKEN} ${#CARTO} ${#ADMIN} >%s/vars\n", dir)
	if out, err := exec.Command("bash", "-c", script.String()).CombinedOutput(); err != nil {
		t.Fatalf("%s script: %v\n%s", heading, err, out)
	}
	read := func(name string, i int) string {
		b, _ := os.ReadFile(fmt.Sprintf("%s/%s%d", dir, name, i))
		return strings.TrimSpace(string(b))
	}
	outputs = make([]string, len(lines))
	for i, line := range lines {
		rc, out := read("rc", i), read("out", i)+read("err", i)
		outputs[i] = out
		switch {
		case want[i] == "" && rc != "0":
			t.Errorf("line %d failed (exit %s): %s\n%s", i+1, rc, line, out)
		case want[i] != "" && (rc == "0" || !strings.Contains(out, want[i])):
			t.Errorf("line %d should fail with %s (exit %s): %s\n%s", i+1, want[i], rc, line, out)
		}
	}
	return lines, want, outputs, dir
}

// TestSecurityTable: every test the README's security table names exists, so
// a renamed or deleted attack test cannot leave a row claiming a defence that
// nothing checks any more.
func TestSecurityTable(t *testing.T) {
	defined := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		for _, m := range regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`).FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(section(t, readme(t), "Security"), "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| attack ") {
			continue
		}
		rows++
		names := regexp.MustCompile("`(Test\\w+)`").FindAllStringSubmatch(line, -1)
		if len(names) == 0 {
			t.Errorf("security row names no test: %s", line)
		}
		for _, m := range names {
			if !defined[m[1]] {
				t.Errorf("the security table names %s, which no test file under server/ defines", m[1])
			}
		}
	}
	named := section(t, readme(t), "Security")
	for name := range defined {
		if strings.HasPrefix(name, "TestAttack") && !strings.Contains(named, "`"+name+"`") {
			t.Errorf("%s is not named in the README's security table: add its row", name)
		}
	}
	if rows < 10 {
		t.Fatalf("found only %d rows in the security table: the pattern no longer matches", rows)
	}
}

// TestDevelopmentMap: the README's map of the packages names only folders
// that exist, and every package under server/internal, so a newcomer can
// trust it to find where a thing lives.
func TestDevelopmentMap(t *testing.T) {
	block := section(t, readme(t), "Development")
	start := strings.Index(block, "```\n")
	end := strings.Index(block[start+4:], "```")
	if start < 0 || end < 0 {
		t.Fatal("the Development section has no map")
	}
	named := map[string]bool{}
	parent := ""
	for _, line := range strings.Split(block[start+4:start+4+end], "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "  …/") {
			continue
		}
		// One folder a line; "…/x" is x under the last full path above it.
		p := strings.TrimSuffix(f[0], "/")
		if rel, ok := strings.CutPrefix(p, "…/"); ok {
			p = parent + "/" + rel
		} else {
			parent = p
		}
		named[p] = true
		if _, err := os.Stat(filepath.Join("..", p)); err != nil {
			t.Errorf("the Development map names %s, which does not exist", p)
		}
	}
	entries, err := os.ReadDir("internal")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if p := "server/internal/" + e.Name(); e.IsDir() && !named[p] {
			t.Errorf("%s is not in the README's Development map: add its line", p)
		}
	}
	if len(named) < 20 {
		t.Fatalf("found only %d folders in the map: the pattern no longer matches", len(named))
	}
}
