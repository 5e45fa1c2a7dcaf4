package entrypoint

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the init under test: with helperEnv set it runs
// Init on a shell script, as the agentlet does when it is PID 1, and reports
// every orphan it reaps on stderr.
const helperEnv = "ENTRYPOINT_TEST_INIT_SCRIPT"

func TestMain(m *testing.M) {
	if script, ok := os.LookupEnv(helperEnv); ok {
		os.Exit(Init([]string{"/bin/sh", "-c", script}, os.Environ(), InitOptions{
			OnReap: func(pid int, _ unix.WaitStatus) { fmt.Fprintf(os.Stderr, "reaped %d\n", pid) },
		}))
	}
	os.Exit(m.Run())
}

func startInit(t *testing.T, script string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewReader(stdout), &stderr
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		t.Fatal("init did not exit")
		return -1
	}
}

// TestInitReapsOrphans: a process whose parent exits is reparented to Init,
// which reaps it when it exits; Init itself exits with its child's status.
func TestInitReapsOrphans(t *testing.T) {
	// The inner shell exits at once, orphaning its background sleep; the outer
	// one outlives the sleep, so the orphan is reaped while the child runs.
	cmd, out, stderr := startInit(t, `sh -c 'sleep 0.2 & echo $!'; sleep 1; exit 7`)
	orphan, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd); code != 7 {
		t.Fatalf("exit code %d, want the child's 7 (stderr: %s)", code, stderr)
	}
	if want := "reaped " + strings.TrimSpace(orphan) + "\n"; stderr.String() != want {
		t.Fatalf("stderr %q, want %q", stderr, want)
	}
}

// TestInitForwardsSignals: the kubelet's SIGTERM to PID 1 reaches the child,
// whose exit code Init returns.
func TestInitForwardsSignals(t *testing.T) {
	cmd, out, stderr := startInit(t, `trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done`)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child not ready: %q %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd); code != 42 {
		t.Fatalf("exit code %d, want 42 from the child's TERM trap (stderr: %s)", code, stderr)
	}
}

// TestInitChildKilled: a child killed by a signal gives 128+signal, as a
// shell reports it.
func TestInitChildKilled(t *testing.T) {
	cmd, _, stderr := startInit(t, `kill -KILL $$`)
	if code := exitCode(t, cmd); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("exit code %d, want %d (stderr: %s)", code, 128+int(syscall.SIGKILL), stderr)
	}
}

func TestInitMissingChild(t *testing.T) {
	if code := Init([]string{"/nonexistent/agentlet"}, nil, InitOptions{}); code != 127 {
		t.Fatalf("exit code %d, want 127", code)
	}
}

func TestInstall(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "bin", "agentlet")
	if err := Install(dst); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(self)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("installed copy differs from the executable (%v)", err)
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("mode %v, want r-xr-xr-x (%v)", fi.Mode(), err)
	}
	// A second install (a restarted init container) replaces the file and
	// leaves no temporary file behind.
	if err := Install(dst); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dst))
	if len(entries) != 1 {
		t.Fatalf("install left %d files, want 1", len(entries))
	}
	if err := Install("relative/agentlet"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("relative destination: %v", err)
	}
}
