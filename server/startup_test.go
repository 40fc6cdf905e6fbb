//go:build unix

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/redistest"
	"github.com/tokenbroker/tokenbroker/server/internal/seal"
	"github.com/tokenbroker/tokenbroker/server/internal/store/boltstore"
)

// scene is one start-up failure: a working configuration on fixed ports,
// which a case spoils for one start; the start after it must work.
type scene struct {
	dir                string
	httpPort, grpcPort int
	env                []string // works on httpPort and grpcPort
	release            []func() // ends what the case held during the failing start
	spare              []int    // more free ports, distinct from those two
}

// port returns a free port distinct from the scene's others.
func (s *scene) port(t *testing.T) int {
	t.Helper()
	if len(s.spare) == 0 {
		t.Fatal("no spare port left")
	}
	p := s.spare[0]
	s.spare = s.spare[1:]
	return p
}

// file writes a file in the scene's directory and returns its path.
func (s *scene) file(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(s.dir, name)
	writeFile(t, p, content)
	return p
}

// hold keeps a loopback port taken until the failing start is over.
func (s *scene) hold(t *testing.T, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	s.release = append(s.release, func() { ln.Close() })
}

// Finding 0: every start-up failure outside demo mode crashed with a nil-pointer
// panic (exit status 2) instead of printing its message. Each failure must
// exit 1 with one message naming the setting and the fix, give back its
// ports, the bbolt lock and every process, and leave no secret in the message.
func TestFaultStartupFailuresExitCleanly(t *testing.T) {
	emu := brokertest.StartEmulator(t)
	const redisPassword = "redis-pass-7f3a91"
	wrongKey := "ZmFrZS1rZXktZmFrZS1rZXktZmFrZS1rZXktZmFrZS0=" // 32 bytes, not brokertest.StoreKey

	for _, tc := range []struct {
		name string
		args string
		// arrange prepares the failure; it returns the settings of the
		// failing start (over s.env), and may change s.env for both starts.
		arrange func(t *testing.T, s *scene) []string
		want    []string // the message says all of these
	}{{
		name:    "PORT in use",
		arrange: func(t *testing.T, s *scene) []string { s.hold(t, s.httpPort); return nil },
		want:    []string{"REST: 127.0.0.1:{PORT} is already in use", "set PORT to a free port"},
	}, {
		name:    "GRPC_PORT in use",
		arrange: func(t *testing.T, s *scene) []string { s.hold(t, s.grpcPort); return nil },
		want:    []string{"gRPC: 127.0.0.1:{GRPC_PORT} is already in use", "set GRPC_PORT to a free port"},
	}, {
		name:    "PORT equal to GRPC_PORT",
		arrange: func(t *testing.T, s *scene) []string { return []string{"PORT=" + strconv.Itoa(s.grpcPort)} },
		want:    []string{"PORT and GRPC_PORT are both", "give each its own port"},
	}, {
		name: "HOST not an address of this machine",
		// 192.0.2.1 is TEST-NET-1: assigned to no machine.
		arrange: func(t *testing.T, s *scene) []string { return []string{"HOST=192.0.2.1"} },
		want:    []string{"HOST 192.0.2.1 is not an address of this machine", "leave it unset"},
	}, {
		name: "a second broker on the same bbolt file",
		arrange: func(t *testing.T, s *scene) []string {
			first := startProcessOn(t, s.port(t), s.port(t), s.env)
			s.release = append(s.release, first.stop)
			return nil
		},
		want: []string{"TOKENBROKER_DB", "in use by another process, most likely another broker", "REDIS_URL"},
	}, {
		name: "wrong TOKENBROKER_STORE_KEY (bbolt)",
		arrange: func(t *testing.T, s *scene) []string {
			key, err := seal.ParseKey(brokertest.StoreKey)
			if err != nil {
				t.Fatal(err)
			}
			st, err := boltstore.Open(boltstore.Config{Path: filepath.Join(s.dir, "tokenbroker.db"), Key: key})
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			return []string{"TOKENBROKER_STORE_KEY=" + wrongKey}
		},
		want: []string{"TOKENBROKER_STORE_KEY does not open the token store", "set the key it was made with", "TOKENBROKER_DB"},
	}, {
		name: "wrong TOKENBROKER_STORE_KEY (Redis)",
		arrange: func(t *testing.T, s *scene) []string {
			rs := redistest.Start(t)
			s.env = append(s.env, "REDIS_URL="+rs.URL)
			startProcessOn(t, s.port(t), s.port(t), s.env).stop() // the store now holds brokertest.StoreKey's check
			return []string{"TOKENBROKER_STORE_KEY=" + wrongKey}
		},
		want: []string{"TOKENBROKER_STORE_KEY does not open the token store", "in Redis at 127.0.0.1:", "set the key it was made with"},
	}, {
		name:    "malformed TOKENBROKER_STORE_KEY",
		arrange: func(t *testing.T, s *scene) []string { return []string{"TOKENBROKER_STORE_KEY=abc"} },
		want:    []string{"TOKENBROKER_STORE_KEY: key decodes to 2 bytes", "openssl rand -base64 32"},
	}, {
		name: "Redis down at start",
		arrange: func(t *testing.T, s *scene) []string {
			return []string{"REDIS_URL=redis://:" + redisPassword + "@127.0.0.1:" + strconv.Itoa(s.port(t))}
		},
		want: []string{"REDIS_URL: cannot reach Redis at 127.0.0.1:", "connection refused", "point REDIS_URL at a running server"},
	}, {
		name: "REDIS_URL with an http scheme",
		arrange: func(t *testing.T, s *scene) []string {
			return []string{"REDIS_URL=http://user:" + redisPassword + "@127.0.0.1:6379/0"}
		},
		want: []string{"REDIS_URL", `scheme "http" is not redis:// or rediss://`},
	}, {
		name: "Redis refuses the password",
		arrange: func(t *testing.T, s *scene) []string {
			addr := redistest.StartWith(t, "--requirepass", "right-"+redisPassword).Addr
			return []string{"REDIS_URL=redis://:" + redisPassword + "@" + addr}
		},
		want: []string{"REDIS_URL: Redis at 127.0.0.1:", "refused the credentials", "WRONGPASS", "set the right user and password in REDIS_URL"},
	}, {
		name: "a Sentinel URL naming an unknown master",
		arrange: func(t *testing.T, s *scene) []string {
			addr := redistest.StartLoneSentinel(t).Addr
			return []string{"REDIS_URL=redis://" + addr + "?master_name=nosuchmaster"}
		},
		want: []string{"REDIS_URL: the Sentinels at 127.0.0.1:", `know no master named "nosuchmaster"`, "set master_name"},
	}, {
		name: "unwritable AUDIT_LOG",
		// Tests run as root: a directory's mode would not stop them, a file
		// in place of a directory does.
		arrange: func(t *testing.T, s *scene) []string {
			return []string{"AUDIT_LOG=" + s.file(t, "not-a-dir", "") + "/audit.log"}
		},
		want: []string{"AUDIT_LOG", "not a directory", "stdout or off"},
	}, {
		name: "unopenable TOKENBROKER_DB",
		arrange: func(t *testing.T, s *scene) []string {
			return []string{"TOKENBROKER_DB=" + s.file(t, "not-a-dir", "") + "/tokenbroker.db"}
		},
		want: []string{"TOKENBROKER_DB", "not a directory"},
	}, {
		name: "missing TOKENBROKER_CONFIG file",
		arrange: func(t *testing.T, s *scene) []string {
			return []string{"TOKENBROKER_CONFIG=" + filepath.Join(s.dir, "missing.yaml")}
		},
		want: []string{"TOKENBROKER_CONFIG", "missing.yaml: no such file or directory"},
	}, {
		name: "malformed YAML",
		arrange: func(t *testing.T, s *scene) []string {
			return []string{"TOKENBROKER_CONFIG=" + s.file(t, "bad.yaml", "users: [\n")}
		},
		want: []string{"TOKENBROKER_CONFIG", "bad.yaml: yaml: line"},
	}, {
		name: "malformed .env file",
		args: "--env-file ENV_FILE",
		arrange: func(t *testing.T, s *scene) []string {
			s.file(t, "bad.env", "JWT_SECRET\n")
			return nil
		},
		want: []string{"bad.env (--env-file): line 1: expected KEY=VALUE"},
	}, {
		name: "missing TLS_CERT_FILE",
		arrange: func(t *testing.T, s *scene) []string {
			return []string{"TLS_CERT_FILE=" + filepath.Join(s.dir, "missing.pem"), "TLS_KEY_FILE=" + s.file(t, "key.pem", "x")}
		},
		want: []string{"TLS_CERT_FILE", "missing.pem: no such file or directory"},
	}, {
		name: "TLS_CERT_FILE not PEM",
		arrange: func(t *testing.T, s *scene) []string {
			return []string{"TLS_CERT_FILE=" + s.file(t, "cert.pem", "not a certificate"), "TLS_KEY_FILE=" + s.file(t, "key.pem", "x")}
		},
		want: []string{"TLS_CERT_FILE / TLS_KEY_FILE", "PEM"},
	}, {
		name: "TLS_CLIENT_CA_FILE not PEM",
		arrange: func(t *testing.T, s *scene) []string {
			cert, key := selfSigned(t)
			return []string{"TLS_CERT_FILE=" + s.file(t, "cert.pem", cert), "TLS_KEY_FILE=" + s.file(t, "key.pem", key),
				"TLS_CLIENT_CA_FILE=" + s.file(t, "ca.pem", "not a certificate")}
		},
		want: []string{"TLS_CLIENT_CA_FILE", "holds no PEM certificate"},
	}, {
		name: "identity provider unreachable",
		arrange: func(t *testing.T, s *scene) []string {
			issuer := "http://127.0.0.1:" + strconv.Itoa(s.port(t)) + "/realms/acme"
			return []string{"TOKENBROKER_CONFIG=" + s.file(t, "idp.yaml", "identity_providers:\n  - {name: corp, issuer: \""+issuer+"\", audience: tokenbroker}\n")}
		},
		want: []string{"identity_providers in TOKENBROKER_CONFIG", `identity provider "corp" cannot be reached`, "connection refused", "check its issuer"},
	}, {
		name: "identity provider without an audience",
		arrange: func(t *testing.T, s *scene) []string {
			return []string{"TOKENBROKER_CONFIG=" + s.file(t, "idp.yaml", "identity_providers:\n  - {name: corp, issuer: \"https://idp.example\"}\n")}
		},
		want: []string{"identity_providers", "TOKENBROKER_CONFIG", `"corp"`, "audience is required"},
	}, {
		name: "demo mode, DEMO_CARTO_PORT in use",
		args: "--demo",
		arrange: func(t *testing.T, s *scene) []string {
			port := s.port(t)
			s.hold(t, port)
			return []string{"DEMO_CARTO_PORT=" + strconv.Itoa(port)}
		},
		want: []string{"CARTO emulator", "already in use", "set DEMO_CARTO_PORT to a free port"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ports := freePorts(t, 4)
			s := &scene{dir: t.TempDir(), httpPort: ports[0], grpcPort: ports[1], spare: ports[2:]}
			cfg := s.file(t, "tokenbroker.yaml", usersYAML("maps"))
			s.env = brokerEnv(t, emu, cfg, "TOKENBROKER_DB="+filepath.Join(s.dir, "tokenbroker.db"))
			bad := tc.arrange(t, s)
			args := strings.ReplaceAll(tc.args, "ENV_FILE", filepath.Join(s.dir, "bad.env"))
			env := append(append([]string{}, s.env...), "PORT="+strconv.Itoa(s.httpPort), "GRPC_PORT="+strconv.Itoa(s.grpcPort))
			env = append(env, bad...)

			code, msg := runFailingStart(t, args, env)
			if code != 1 {
				t.Fatalf("exit status %d, want 1; stderr:\n%s", code, msg)
			}
			checkOneMessage(t, msg)
			for _, w := range tc.want {
				w = strings.NewReplacer("{PORT}", strconv.Itoa(s.httpPort), "{GRPC_PORT}", strconv.Itoa(s.grpcPort)).Replace(w)
				if !strings.Contains(msg, w) {
					t.Errorf("the message does not say %q:\n%s", w, msg)
				}
			}
			for _, secret := range []string{redisPassword, brokertest.JWTSecret, brokertest.StoreKey, wrongKey, brokertest.CartoClientSecret} {
				if strings.Contains(msg, secret) {
					t.Errorf("the message holds a secret (%s):\n%s", secret, msg)
				}
			}
			t.Logf("exit status %d: %s", code, msg)

			// Nothing was left half-open: with what the case held given
			// back, a broker starts on the same ports and the same files
			// and stores. (A configuration error comes before anything is
			// opened, and a start costs seconds of bcrypt under -race.)
			for _, r := range s.release {
				r()
			}
			if !strings.HasPrefix(msg, "tokenbroker: invalid configuration:") {
				startProcessOn(t, s.httpPort, s.grpcPort, s.env).stop()
			}
		})
	}
}

// runFailingStart runs the broker (main() in a child process) with only env
// and returns its exit status and stderr. The broker must exit within a
// minute, and leave no process of its group running.
func runFailingStart(t *testing.T, args string, env []string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Dir = t.TempDir() // no .env file around
	cmd.Env = append([]string{"TOKENBROKER_TEST_RUN_MAIN=1", "TOKENBROKER_TEST_ARGS=" + args}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the broker did not exit within a minute; stderr:\n%s", stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	// Its process group is empty: nothing it started outlives it.
	if err := syscall.Kill(-cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("processes of the failed broker's group are still running (kill -0: %v)", err)
	}
	return cmd.ProcessState.ExitCode(), strings.TrimSpace(stderr.String())
}

// checkOneMessage checks that msg is the broker's one message: a line
// "tokenbroker: ...", or a configuration error listing one problem, and
// nothing else (no panic, no log line, no library's own output).
func checkOneMessage(t *testing.T, msg string) {
	t.Helper()
	if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
		t.Fatalf("the broker panicked:\n%s", msg)
	}
	lines := strings.Split(msg, "\n")
	if !strings.HasPrefix(lines[0], "tokenbroker: ") {
		t.Fatalf("stderr does not begin with the broker's message:\n%s", msg)
	}
	// Each case spoils one setting: a configuration error lists one problem.
	if lines[0] == "tokenbroker: invalid configuration:" && (len(lines) != 2 || !strings.HasPrefix(lines[1], "  - ")) {
		t.Fatalf("one spoilt setting, not one problem reported:\n%s", msg)
	}
	if lines[0] != "tokenbroker: invalid configuration:" && len(lines) > 1 {
		t.Fatalf("stderr is more than the broker's message (line 2: %q):\n%s", lines[1], msg)
	}
}

// selfSigned returns a PEM certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tokenbroker test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// Finding 0: no start-up path may panic. Odd command lines, over a working
// configuration, end with a usage error (2) or a configuration error (1).
func TestFaultOddCommandLinesDoNotPanic(t *testing.T) {
	emu := brokertest.StartEmulator(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tokenbroker.yaml")
	writeFile(t, cfg, usersYAML("maps"))
	ports := freePorts(t, 2)
	env := append(brokerEnv(t, emu, cfg, "TOKENBROKER_DB="+filepath.Join(dir, "tokenbroker.db")),
		"PORT="+strconv.Itoa(ports[0]), "GRPC_PORT="+strconv.Itoa(ports[1]))
	for _, tc := range []struct {
		args string
		code int
	}{
		{"--port", 2},
		{"--demo=maybe", 2},
		{"--env-file", 2},
		{"extra-argument", 2},
		{"hash-password --cost", 2},
		{"hash-password --cost 99", 2},
		{"cartosim --port x", 2},
		{"--port 70000", 1},
		{"--store nosuch", 1},
		{"--config /", 1},
		{"--db /", 1},
		{"--host [::1", 1},
	} {
		code, msg := runFailingStart(t, tc.args, env)
		if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
			t.Fatalf("tokenbroker %s panicked:\n%s", tc.args, msg)
		}
		if code != tc.code {
			t.Errorf("tokenbroker %s: exit status %d, want %d:\n%s", tc.args, code, tc.code, msg)
		}
	}
}
