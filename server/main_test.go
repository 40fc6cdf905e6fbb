package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
)

// TestMain lets a test run this binary's main() in a child process, to check
// what a user sees: the exit status and the message.
func TestMain(m *testing.M) {
	if os.Getenv("TOKENBROKER_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"tokenbroker"}, strings.Fields(os.Getenv("TOKENBROKER_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m) // and no goroutine may outlive the tests
}

// runMain runs main() in a child process with only the given environment.
func runMain(t *testing.T, args string, env ...string) (exitCode int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = t.TempDir() // no .env file around
	cmd.Env = append([]string{"TOKENBROKER_TEST_RUN_MAIN=1", "TOKENBROKER_TEST_ARGS=" + args}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errb.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

func TestNoConfigurationExitsNamingWhatIsMissing(t *testing.T) {
	code, _, stderr := runMain(t, "")
	if code == 0 {
		t.Fatal("started with no configuration")
	}
	for _, want := range []string{"JWT_SECRET", "CARTO_BASE_URL", "CARTO_CLIENT_ID", "CARTO_CLIENT_SECRET", "TOKENBROKER_CONFIG", "--demo"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("message does not name %s:\n%s", want, stderr)
		}
	}
	t.Logf("exit status %d, message:\n%s", code, stderr)
}

func TestShortSecretAndBadFileAreNamed(t *testing.T) {
	code, _, stderr := runMain(t, "", "JWT_SECRET=short", "CARTO_BASE_URL=https://gcp-us-east1.api.carto.com",
		"CARTO_CLIENT_ID=id", "CARTO_CLIENT_SECRET=supersecretvalue", "TOKENBROKER_CONFIG=/nonexistent/tb.yaml")
	if code == 0 || !strings.Contains(stderr, "JWT_SECRET is 5 bytes") || !strings.Contains(stderr, "/nonexistent/tb.yaml") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "supersecretvalue") {
		t.Fatal("the client secret was printed")
	}
}

func TestUnknownFlagIsAUsageError(t *testing.T) {
	code, _, stderr := runMain(t, "--no-such-flag")
	if code != 2 || !strings.Contains(stderr, "no-such-flag") || !strings.Contains(stderr, "-demo") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestHashPassword(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"hash-password", "--cost", "10"}, func(string) (string, bool) { return "", false },
		strings.NewReader("s3cret\n"), &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out.String())
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")) != nil {
		t.Fatalf("printed %q, not a hash of the password", hash)
	}
	for _, tc := range []struct{ args, stdin string }{{"--cost 4", "x\n"}, {"", "\n"}, {"", strings.Repeat("x", 80)}} {
		err := run(context.Background(), append([]string{"hash-password"}, strings.Fields(tc.args)...), nil, strings.NewReader(tc.stdin), &out, &errb)
		var usage usageError
		if !errors.As(err, &usage) {
			t.Errorf("hash-password %s with %q: %v, want a usage error", tc.args, tc.stdin, err)
		}
	}
}
