package brokertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
)

// servingMsg is the line a broker logs once it serves (after App.Serving),
// with its addresses.
const servingMsg = `"msg":"tokenbroker serving"`

// Process is a broker running as a process, which a test can kill.
type Process struct {
	GRPCAddr string // host:port
	RESTURL  string // http://host:port
	// Logs holds what it writes to stdout and stderr.
	Logs *logtest.Buffer

	proc   *os.Process
	exited chan struct{} // closed once it has exited
	err    error         // how it exited, once exited is closed
}

// StartProcess starts cmd, a broker (the binary, or a test binary re-run as
// main) with the environment of a Setup, and waits until it serves: until
// it logs that it does, with the addresses it listens on. Its output goes
// to Logs. It is killed when the test ends; its log is printed if the test
// failed.
func StartProcess(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Logs: &logtest.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Logs, p.Logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.proc = cmd.Process
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if err := p.Kill(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("broker %s log:\n%s", p.GRPCAddr, p.Logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { // a process that exits ends the wait
		select {
		case <-p.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := p.Logs.Await(ctx, servingMsg); err != nil {
		if p.Exited() {
			t.Fatalf("broker exited during start: %v\n%s", p.err, p.Logs.String())
		}
		t.Fatalf("broker not serving: %v\n%s", err, p.Logs.String())
	}
	grpcAddr, rest, err := servingAddrs(p.Logs.String())
	if err != nil {
		t.Fatal(err)
	}
	p.GRPCAddr, p.RESTURL = grpcAddr, "http://"+rest
	return p
}

// servingAddrs reads the addresses of a broker's serving line (JSON).
func servingAddrs(log string) (grpcAddr, rest string, err error) {
	for line := range strings.Lines(log) {
		if !strings.Contains(line, servingMsg) {
			continue
		}
		var l struct{ GRPC, REST string }
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.GRPC == "" || l.REST == "" {
			return "", "", fmt.Errorf("brokertest: serving line without addresses (LOG_FORMAT=json?): %q %v", line, err)
		}
		return l.GRPC, l.REST, nil
	}
	return "", "", errors.New("brokertest: no serving line")
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL, as a crash would, and waits for the process to end.
func (p *Process) Kill() error {
	if p.Exited() {
		return nil
	}
	_ = p.proc.Signal(syscall.SIGKILL)
	return p.wait(10*time.Second, "SIGKILL")
}

// Stop sends SIGTERM and waits for the process to exit; it returns how it
// exited (nil: status 0).
func (p *Process) Stop() error {
	_ = p.proc.Signal(syscall.SIGTERM)
	if err := p.wait(20*time.Second, "SIGTERM"); err != nil {
		return err
	}
	return p.err
}

func (p *Process) wait(d time.Duration, sig string) error {
	select {
	case <-p.exited:
		return nil
	case <-time.After(d):
		return fmt.Errorf("brokertest: broker %s did not end within %s of %s", p.GRPCAddr, d, sig)
	}
}
