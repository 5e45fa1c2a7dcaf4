// Package procs runs the project's own binaries as real child processes in
// tests: it builds them once per test binary and starts, signals and stops
// them so that nothing outlives the test, even a crashed one.
package procs

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exo-in-go/exo/test/framework"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{} // package set -> directory
)

// Build builds the main packages (such as "./cmd/exo-app") once per test
// binary into the user cache, like the Kubernetes binaries, in a folder per
// checkout and package set that each run replaces, so no run leaves a copy
// of its own behind; the Go build cache makes the rebuild quick. Binaries
// are built aside and renamed into place, so a concurrent run of the same
// checkout never executes a half-written file. It returns the folder; each
// binary is named after its package's last element.
func Build(t testing.TB, pkgs ...string) string {
	t.Helper()
	pkgs = append([]string(nil), pkgs...)
	sort.Strings(pkgs)
	key := strings.Join(pkgs, " ")
	buildMu.Lock()
	defer buildMu.Unlock()
	if dir, ok := built[key]; ok {
		return dir
	}
	dir, err := build(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	built[key] = dir
	return dir
}

func build(pkgs []string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	root := framework.RepoRoot()
	sum := sha256.Sum256([]byte(root + "\x00" + strings.Join(pkgs, " ")))
	dir := filepath.Join(cache, "exo-in-go", "test-bin", hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", append([]string{"build", "-o", tmp + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	for _, p := range pkgs {
		name := filepath.Base(p)
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// Child is a process started by a test. Like hack/local-up's children it
// has its own process group and dies with the test binary (Pdeathsig), so
// a crashed or killed test leaves nothing running.
type Child struct {
	Name string
	Log  string // path of its combined stdout and stderr
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs path with args; env entries are added to the test's own
// environment (later entries win). The process is stopped when the test
// ends, and the tail of its log is printed if the test failed.
func Start(t testing.TB, name string, env []string, path string, args ...string) *Child {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	c := &Child{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.Stop(15 * time.Second)
		if t.Failed() {
			c.DumpLog(t, 40)
		}
	})
	return c
}

// PID is the process id.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Signal sends sig to the process itself (not its group).
func (c *Child) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(c.PID(), sig); err != nil {
		t.Fatalf("%s %s: %v", sig, c.Name, err)
	}
}

// Exited reports an early exit as an error, nil while the process runs.
func (c *Child) Exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited: %v (log %s)", c.Name, c.err, c.Log)
	default:
		return nil
	}
}

// WaitKilled waits for the process to be reaped and checks that sig ended it.
func (c *Child) WaitKilled(t testing.TB, sig syscall.Signal, d time.Duration) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %s of %s", c.Name, d, sig)
	}
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != sig {
		t.Fatalf("%s ended with %v, want %s", c.Name, c.cmd.ProcessState, sig)
	}
}

// Stop sends SIGTERM to the process group (after SIGCONT, in case a test
// left it stopped), SIGKILL after grace, and waits. A process that already
// ended (killed by the test) is left alone: its id may be reused.
func (c *Child) Stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	pgid := -c.PID()
	_ = syscall.Kill(pgid, syscall.SIGCONT)
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-c.done
	}
	// Whatever the process left in its group goes too.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

// DumpLog prints the last lines of the process's log.
func (c *Child) DumpLog(t testing.TB, lines int) {
	f, err := os.Open(c.Log)
	if err != nil {
		return
	}
	defer f.Close()
	var tail []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		tail = append(tail, sc.Text())
		if len(tail) > lines {
			tail = tail[1:]
		}
	}
	t.Logf("last lines of %s (pid %d):\n%s", c.Name, c.PID(), strings.Join(tail, "\n"))
}

// WaitHTTP polls url until it answers 200, the process exits, or d passes.
func (c *Child) WaitHTTP(url string, d time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(d)
	for {
		if err := c.Exited(); err != nil {
			return err
		}
		if res, err := hc.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not ready after %s", c.Name, url, d)
		}
		time.Sleep(100 * time.Millisecond) // polling readiness
	}
}

// RSS is the process's resident set size in bytes, from /proc.
func (c *Child) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.PID()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", c.PID())
}
