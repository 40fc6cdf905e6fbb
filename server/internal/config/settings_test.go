package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeRow is a row of the README's configuration table.
type readmeRow struct {
	line        string
	names       []string // the variables of its first column
	flag, deflt string   // its flag and default columns, as written
}

// readmeConfiguration reads the rows of the table in the README's
// "Configuration" section.
func readmeConfiguration(t *testing.T) []readmeRow {
	t.Helper()
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal(`README has no section "Configuration"`)
	}
	body, _, _ = strings.Cut(body, "\n## ")
	var rows []readmeRow
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| variable ") {
			continue
		}
		cols := strings.SplitN(line, "|", 5) // "", names, flag, default, meaning
		if len(cols) < 5 {
			t.Fatalf("configuration row with fewer than 4 columns: %s", line)
		}
		r := readmeRow{line: line, flag: strings.TrimSpace(cols[2]), deflt: strings.TrimSpace(cols[3])}
		for _, m := range regexp.MustCompile("`([A-Z0-9_]+)`").FindAllStringSubmatch(cols[1], -1) {
			r.names = append(r.names, m[1])
		}
		rows = append(rows, r)
	}
	return rows
}

// TestConfigurationReference: the README's configuration table lists every
// setting of the table (settings.go) with its flag and its default, and
// nothing else, so neither can drift from the other.
func TestConfigurationReference(t *testing.T) {
	rows := readmeConfiguration(t)
	byEnv, byFlag := map[string]setting{}, map[string]setting{}
	for _, s := range settings {
		if s.env != "" {
			byEnv[s.env] = s
		} else {
			byFlag["`--"+s.flag+"`"] = s
		}
	}
	documented := map[string]int{} // setting name -> rows naming it
	check := func(r readmeRow, s setting) {
		documented[s.name()]++
		wantFlag := ""
		if s.flag != "" {
			wantFlag = "`--" + s.flag + "`"
		}
		if r.flag != wantFlag {
			t.Errorf("%s: the README's flag is %q, the code's %q", s.name(), r.flag, wantFlag)
		}
		if r.deflt != s.defaultText() {
			t.Errorf("%s: the README's default is %q, the code's %q", s.name(), r.deflt, s.defaultText())
		}
	}
	for _, r := range rows {
		if len(r.names) == 0 {
			s, ok := byFlag[r.flag]
			if !ok {
				t.Errorf("the README's configuration table has a row the code does not read: %s", r.line)
				continue
			}
			check(r, s)
		}
		for _, name := range r.names {
			s, ok := byEnv[name]
			if !ok {
				t.Errorf("%s is in the README's configuration table but the code does not read it", name)
				continue
			}
			check(r, s)
		}
	}
	for _, s := range settings {
		switch n := documented[s.name()]; {
		case n == 0:
			t.Errorf("%s is read by the code but not in the README's configuration table", s.name())
		case n > 1:
			t.Errorf("%s is in %d rows of the README's configuration table", s.name(), n)
		}
	}
	if len(rows) < 20 {
		t.Fatalf("found only %d rows in the README's configuration table: the pattern no longer matches", len(rows))
	}
}

// Every setting is documented, names itself once, and has a default that
// reads without error; a default computed from others is described.
func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range settings {
		for _, name := range []string{s.env, "--" + s.flag} {
			if name != "" && name != "--" && seen[name] {
				t.Errorf("%s is in the table twice", name)
			}
			seen[name] = true
		}
		if s.doc == "" || strings.Contains(s.doc, "\n") {
			t.Errorf("%s: the doc must be one line", s.name())
		}
		if s.defFor != nil && s.defDoc == "" {
			t.Errorf("%s: a computed default needs defDoc", s.name())
		}
		if s.parse == nil && s.flag != envFileFlag {
			t.Errorf("%s: nothing reads it", s.name())
		}
		var c Config
		if def := s.defaultValue(&c); def != "" && s.parse != nil {
			if err := s.parse(&c, s.name(), def); err != nil {
				t.Errorf("%s: its default %q does not read: %v", s.name(), def, err)
			}
		}
	}
}

// The usage text names every flag and variable, with its default.
func TestUsage(t *testing.T) {
	flags, env := FlagUsage(), EnvUsage()
	for _, want := range []string{"-demo\n", "-env-file string", "(default .env)", "-port string", "REST port (overrides PORT)"} {
		if !strings.Contains(flags, want) {
			t.Errorf("flag usage lacks %q:\n%s", want, flags)
		}
	}
	for _, s := range settings {
		if s.env != "" && !strings.Contains(env, "  "+s.env+" ") && !strings.Contains(env, "  "+s.env+"\n") {
			t.Errorf("environment usage lacks %s:\n%s", s.env, env)
		}
	}
	for _, want := range []string{"PORT (flag -port)\n    \tREST port; default: 8000\n", "JWT_SECRET\n", "at least 32 bytes; required\n", "; default: 4 × GOMAXPROCS\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("environment usage lacks %q:\n%s", want, env)
		}
	}
}
