// Package localup runs `make run` the way a new user does: it starts hack/local-up,
// waits for the printed welcome, runs the printed commands, and stops it with Ctrl-C
// (SIGINT), checking that nothing it started is left running.
package localup

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exo-in-go/exo/test/framework"
)

func TestMakeRun(t *testing.T) {
	root := framework.RepoRoot()
	kubeBin, err := framework.BinaryDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/...", "./hack/local-up")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	state := t.TempDir()
	port := freePort(t)
	args := []string{"-bin", bin, "-dir", state, "-port", fmt.Sprint(port)}
	for _, flag := range []string{"-webhook-port", "-api-port", "-metrics-port", "-probe-port"} {
		args = append(args, flag, fmt.Sprint(freePort(t)))
	}
	cmd := exec.Command(filepath.Join(bin, "local-up"), args...)
	cmd.Dir = root
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	welcome := make(chan string, 1)
	go func() {
		var out strings.Builder
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !sent && strings.Contains(sc.Text(), "Press Ctrl-C") {
				welcome <- out.String()
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Signal(syscall.SIGINT)
			<-exited
		}
	}()

	var text string
	select {
	case text = <-welcome:
	case err := <-exited:
		stopped = true
		t.Fatalf("local-up exited before it was ready: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Minute):
		t.Fatalf("local-up not ready after 10 minutes\n%s", stderr.String())
	}
	t.Logf("local-up printed:\n%s", text)

	uiURL := match(t, text, `UI\s+(http://\S+)`)
	kubeconfig := match(t, text, `kubeconfig\s+(\S+)`)
	if want := fmt.Sprintf("http://localhost:%d", port); uiURL != want {
		t.Fatalf("UI URL %q, want %q", uiURL, want)
	}
	resp, err := http.Get(uiURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("UI answered %s", resp.Status)
	}

	// The printed commands, with the printed environment.
	env := append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+bin+":"+kubeBin+":"+os.Getenv("PATH"))
	run := func(name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, name, args...)
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	if !strings.Contains(text, "kubectl get agents") || !strings.Contains(text, `kubectl agent invoke hello --input "world" --wait`) {
		t.Fatalf("welcome lacks the commands to try:\n%s", text)
	}
	if out := run("kubectl", "get", "agents"); !regexp.MustCompile(`(?m)^hello\s`).MatchString(out) {
		t.Fatalf("kubectl get agents:\n%s", out)
	}
	// The agent pod starts on localnode; the invocation answers 503 until it is ready.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		c := exec.CommandContext(ctx, "kubectl", "agent", "invoke", "hello", "--input", "world", "--wait")
		c.Env = env
		out, err := c.CombinedOutput()
		cancel()
		if err == nil {
			if !strings.Contains(string(out), "hello from") || !strings.Contains(string(out), "world") {
				t.Fatalf("kubectl agent invoke printed %q", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl agent invoke: %v\n%s", err, out)
		}
		time.Sleep(2 * time.Second)
	}

	// Ctrl-C stops everything.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("local-up exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("local-up did not stop within 2 minutes of SIGINT")
	}
	if left := processesUnder(state, bin); len(left) > 0 {
		t.Fatalf("processes left behind after Ctrl-C:\n%s", strings.Join(left, "\n"))
	}
}

func match(t *testing.T, text, expr string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("welcome lacks %s:\n%s", expr, text)
	}
	return m[1]
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// processesUnder lists live processes whose command line mentions one of dirs: every
// process local-up starts runs a binary from bin or keeps its files under state.
func processesUnder(dirs ...string) []string {
	var left []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if fields := strings.Fields(string(stat)); len(fields) > 2 && fields[2] == "Z" {
			continue
		}
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		for _, d := range dirs {
			if strings.Contains(line, d) {
				left = append(left, e.Name()+": "+line)
				break
			}
		}
	}
	return left
}
