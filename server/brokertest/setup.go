package brokertest

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
)

// The secrets of a configured broker (see Config): fixed, so that a test can
// sign a session token itself, or check that none of them leaks.
const (
	JWTSecret = "brokertest-secret-brokertest-secret-0123"
	// StoreKey seals the broker's store (a bbolt file, or Redis).
	StoreKey          = "q1Yt9vWcZ3m0xJ7aR2bN5pL8sD4fG6hK0uE1iO3yT9w="
	CartoClientID     = "brokertest-client"
	CartoClientSecret = "brokertest-client-secret"
)

// An Option configures a broker. Later options override earlier ones.
type Option func(*settings)

type settings struct {
	configYAML, configFile string // configured mode when either is set
	env                    map[string]string
	emulator               *Emulator
	appOpts                []app.Option
	logs                   io.Writer
}

func (s *settings) configured() bool { return s.configYAML != "" || s.configFile != "" }

// Demo starts the broker in demo mode, the default: its own CARTO emulator,
// the demo users (see BostonUser), no account.
func Demo() Option {
	return func(s *settings) { s.configYAML, s.configFile = "", "" }
}

// Config starts the broker configured as a deployment is, with yaml as its
// TOKENBROKER_CONFIG, against a CARTO emulator (a new one unless
// WithEmulator gives one), with this package's secrets and a bbolt store of
// its own.
func Config(yaml string) Option {
	return func(s *settings) { s.configYAML, s.configFile = yaml, "" }
}

// ConfigFile is Config with the file at path, for a test that changes the
// file between starts.
func ConfigFile(path string) Option {
	return func(s *settings) { s.configYAML, s.configFile = "", path }
}

// DemoUsers is Config with demo mode's users and groups.
func DemoUsers() Option { return Config(string(config.DemoYAML())) }

// WithEmulator points a configured broker at e: replicas share one CARTO.
func WithEmulator(e *Emulator) Option { return func(s *settings) { s.emulator = e } }

// Env sets environment variables over the harness's own, as the
// environment would (e.g. SESSION_TTL, REDIS_URL).
func Env(env map[string]string) Option {
	return func(s *settings) {
		if s.env == nil {
			s.env = map[string]string{}
		}
		maps.Copy(s.env, env)
	}
}

// AppOptions passes opts to app.New (in process only).
func AppOptions(opts ...app.Option) Option {
	return func(s *settings) { s.appOpts = append(s.appOpts, opts...) }
}

// Logs sends the broker's log (JSON lines, debug level) to w instead of
// Broker.Logs (in process only).
func Logs(w io.Writer) Option { return func(s *settings) { s.logs = w } }

// Setup is what a broker starts with: its command line and environment. An
// in-process broker (Start) loads it as the binary would; a test that runs
// the binary passes it on.
type Setup struct {
	Args []string
	Env  map[string]string
	// Emulator is the CARTO of a configured broker; nil in demo mode.
	Emulator *Emulator
}

// Environ is s.Env as KEY=VALUE lines, for exec.Cmd.Env.
func (s Setup) Environ() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		out = append(out, k+"="+s.Env[k])
	}
	return out
}

// lookup reads s.Env as config.Load reads the environment.
func (s Setup) lookup(k string) (string, bool) { v, ok := s.Env[k]; return v, ok }

// Prepare resolves opts into a Setup for a broker process: its files are
// written in a directory of the test's, and an emulator it needs is stopped
// when the test ends. A process started with it in another directory finds
// no .env file, so it needs no arguments in configured mode.
func Prepare(t testing.TB, opts ...Option) Setup {
	t.Helper()
	s, _, closeEmulator, err := prepare(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeEmulator)
	return s
}

// prepare resolves opts, writing files in dir. Both kinds of broker listen
// on loopback, on ports the system picks (PORT=0 ...; a test may override
// them), and log JSON (a process at LOG_LEVEL's level, info by default: a
// test that reads its debug lines sets it). closeEmulator stops an emulator
// it started.
func prepare(dir string, opts []Option) (_ Setup, _ settings, closeEmulator func(), err error) {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	closeEmulator = func() {}
	env := map[string]string{
		"HOST": "127.0.0.1", "PORT": "0", "GRPC_PORT": "0",
		"LOG_FORMAT": "json",
	}
	// No .env file of the working directory is read.
	args := []string{"--env-file="}
	emu := s.emulator
	switch {
	case !s.configured() && emu != nil:
		return Setup{}, s, nil, errors.New("brokertest: WithEmulator needs Config: a demo broker runs its own emulator")
	case !s.configured():
		args = append(args, "--demo")
		env["DEMO_CARTO_PORT"] = "0"
	default:
		if emu == nil {
			if emu, err = NewEmulator(); err != nil {
				return Setup{}, s, nil, err
			}
			closeEmulator = emu.Close
		}
		cfgFile := s.configFile
		if cfgFile == "" {
			cfgFile = filepath.Join(dir, "tokenbroker.yaml")
			if err := os.WriteFile(cfgFile, []byte(s.configYAML), 0o600); err != nil {
				closeEmulator()
				return Setup{}, s, nil, fmt.Errorf("brokertest: %w", err)
			}
		}
		maps.Copy(env, map[string]string{
			"JWT_SECRET":          JWTSecret,
			"CARTO_BASE_URL":      emu.URL,
			"CARTO_AUTH_URL":      emu.URL + "/oauth/token",
			"CARTO_CLIENT_ID":     CartoClientID,
			"CARTO_CLIENT_SECRET": CartoClientSecret,
			"TOKENBROKER_CONFIG":  cfgFile,
			// The default store: a bbolt file, sealed with StoreKey.
			"TOKENBROKER_DB":        filepath.Join(dir, "tokenbroker.db"),
			"TOKENBROKER_STORE_KEY": StoreKey,
		})
	}
	maps.Copy(env, s.env)
	return Setup{Args: args, Env: env, Emulator: emu}, s, closeEmulator, nil
}
