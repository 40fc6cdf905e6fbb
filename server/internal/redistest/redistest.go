// Package redistest starts a real redis-server for a test, on a free
// loopback port, keeping nothing on disk. Tests that need Redis are skipped
// with a clear message where the binary is missing, unless
// TOKENBROKER_REQUIRE_REDIS=1 (as .ci/run sets), where that is a failure.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server child process.
type Server struct {
	Addr string // host:port
	URL  string // redis://host:port
	port int
	dir  string
	conf string   // configuration file, for a sentinel; none when empty
	args []string // further arguments (cluster mode, replicaof, ...)
	cmd  *exec.Cmd
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if Missing(t) {
		t.Skip(missing)
	}
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// StartWith starts a server with further redis-server arguments (such as
// "--requirepass", "secret") and stops it when the test ends.
func StartWith(t testing.TB, args ...string) *Server {
	t.Helper()
	return startNode(t, &Server{args: args}, freePort)
}

const missing = "redis-server is not installed: install it (Debian: apt-get install redis-server) to run the Redis tests; .ci/run installs it"

// Missing reports whether redis-server is missing here, for a test that can
// run in part without it. Where TOKENBROKER_REQUIRE_REDIS=1, a missing
// redis-server fails t instead.
func Missing(t testing.TB) bool {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err == nil {
		return false
	}
	if os.Getenv("TOKENBROKER_REQUIRE_REDIS") == "1" {
		t.Fatal(missing)
	}
	return true
}

// New starts a server keeping its files in dir, outside a test (the
// benchmark command); Kill stops it.
func New(dir string) (*Server, error) {
	return newServer(&Server{dir: dir}, freePort)
}

// newServer starts s on a port that pick chooses, trying a few in case
// another process takes one between pick and the start.
func newServer(s *Server, pick func() (int, error)) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if s.port, err = pick(); err != nil {
			return nil, err
		}
		if err = s.start(bin); err == nil {
			break
		} else if attempt == 4 {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.URL = "redis://" + s.Addr
	return s, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start(bin string) error {
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	args = append(args,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning")
	cmd := exec.Command(bin, append(args, s.args...)...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ping(addr) == nil {
			return nil
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	s.cmd = nil
	return fmt.Errorf("redis-server on port %d did not answer PING", s.port)
}

// ping sends PING and expects +PONG (or -NOAUTH).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// A server with requirepass answers -NOAUTH: it is up all the same.
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Kill stops the server at once (SIGKILL), as a crash would. Its data is
// lost: it keeps nothing on disk.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.start(bin)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart redis-server: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the port may linger a moment
	}
}
