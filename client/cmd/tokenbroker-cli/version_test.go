package main

import (
	"regexp"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	// No broker is called: the address is unreachable.
	c := cli{t: t, env: map[string]string{"TOKENBROKER_ADDR": "127.0.0.1:1"}}
	line := regexp.MustCompile(`^tokenbroker-cli \S+ \(commit \S+?(, modified)?, go\S+\)\n$`)
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--json", "--version", "token"}} {
		r := c.run("", args...)
		if r.code != 0 || !line.MatchString(r.stdout) || r.stderr != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}
