package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// flagValues are the flags given, by name: "" when not given, except that a
// flag alone (--demo, --env-file) starts at its default.
type flagValues map[string]string

// ErrVersion is returned by Load for --version: the caller prints the
// version and exits. Like -h, --version is not a setting, so it is not in
// the settings table (nor the README's configuration table).
var ErrVersion = errors.New("version requested")

// versionFlag is the flag that asks for the version.
const versionFlag = "version"

// parseFlags reads the flags of the settings table from args, and
// --version. It also returns which flags were given explicitly.
func parseFlags(args []string) (flagValues, map[string]bool, error) {
	given, explicit := flagValues{}, map[string]bool{}
	flags := flag.NewFlagSet("tokenbroker", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	for _, s := range settings {
		if s.flag == "" {
			continue
		}
		if s.env == "" {
			given[s.flag] = s.def
		}
		flags.Var(flagValue{given, s.flag, s.isBool}, s.flag, s.doc)
	}
	wantVersion := flags.Bool(versionFlag, false, "print the version and exit")
	if err := flags.Parse(args); err != nil {
		return nil, nil, err
	}
	if *wantVersion {
		return nil, nil, ErrVersion
	}
	if flags.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", flags.Arg(0))
	}
	flags.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	return given, explicit, nil
}

// flagValue is one flag, kept in the given map.
type flagValue struct {
	given  flagValues
	name   string
	isBool bool
}

func (f flagValue) String() string { return f.given[f.name] }

func (f flagValue) Set(v string) error {
	if f.isBool {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		v = strconv.FormatBool(b)
	}
	f.given[f.name] = v
	return nil
}

func (f flagValue) IsBoolFlag() bool { return f.isBool }

// FlagUsage describes the flags Load accepts.
func FlagUsage() string {
	return usage(func(s setting) (head, doc string, ok bool) {
		head, doc = "-"+s.flag, s.doc
		if !s.isBool {
			head += " string"
		}
		if s.env != "" {
			doc += " (overrides " + s.env + ")"
		} else if d := plain(s.defaultText()); d != "" {
			doc += " (default " + d + ")"
		}
		return head, doc, s.flag != ""
	}) + "  -" + versionFlag + "\n    \tprint the version and exit\n"
}

// EnvUsage describes the environment variables Load reads, with their
// defaults.
func EnvUsage() string {
	return usage(func(s setting) (head, doc string, ok bool) {
		head, doc = s.env, s.doc
		if s.flag != "" {
			head += " (flag -" + s.flag + ")"
		}
		switch d := plain(s.defaultText()); {
		case strings.HasPrefix(d, "required"):
			doc += "; " + d
		case d != "":
			doc += "; default: " + d
		}
		return head, doc, s.env != ""
	})
}

// usage writes an entry for each setting entry accepts, as flag's usage
// does: its head, then its doc indented below.
func usage(entry func(s setting) (head, doc string, ok bool)) string {
	var b strings.Builder
	for _, s := range settings {
		if head, doc, ok := entry(s); ok {
			fmt.Fprintf(&b, "  %s\n    \t%s\n", head, doc)
		}
	}
	return b.String()
}
