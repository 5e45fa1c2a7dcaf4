// Package localup runs `make run` the way a new user does: it starts hack/local-up,
// waits for the printed welcome, runs the printed commands, checks that the cluster
// collects garbage, aggregates ClusterRoles and schedules as a real one does, and stops
// it with Ctrl-C (SIGINT), checking that nothing it started is left running.
package localup

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/ports"
)

// localUp is a running `make run`: hack/local-up started the way a user does.
type localUp struct {
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
	exited  chan error
	stopped bool
	bin     string // our binaries: kubectl-agent, exo-app, …
	state   string // local-up's -dir
	port    int
	// welcome is what local-up printed up to "Press Ctrl-C".
	welcome string
	// env is the printed environment: KUBECONFIG and PATH.
	env []string
}

// startLocalUp builds the binaries and runs local-up on free ports until it
// prints its welcome; it is stopped with SIGINT when the test ends unless
// the test stops it itself.
func startLocalUp(tb testing.TB) *localUp {
	tb.Helper()
	root := framework.RepoRoot()
	kubeBin, err := framework.BinaryDir()
	if err != nil {
		tb.Fatal(err)
	}
	u := &localUp{bin: tb.TempDir(), state: tb.TempDir(), port: ports.Free(tb), stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	build := exec.Command("go", "build", "-o", u.bin+"/", "./cmd/...", "./hack/local-up")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	args := []string{"-bin", u.bin, "-dir", u.state, "-port", fmt.Sprint(u.port)}
	for _, flag := range []string{"-webhook-port", "-api-port", "-metrics-port", "-probe-port"} {
		args = append(args, flag, fmt.Sprint(ports.Free(tb)))
	}
	u.cmd = exec.Command(filepath.Join(u.bin, "local-up"), args...)
	u.cmd.Dir = root
	stdout, err := u.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	u.cmd.Stderr = u.stderr
	if err := u.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
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
		u.exited <- u.cmd.Wait()
	}()
	tb.Cleanup(func() {
		if !u.stopped {
			_ = u.cmd.Process.Signal(syscall.SIGINT)
			<-u.exited
		}
	})
	select {
	case u.welcome = <-welcome:
	case err := <-u.exited:
		u.stopped = true
		tb.Fatalf("local-up exited before it was ready: %v\n%s", err, u.stderr.String())
	case <-time.After(10 * time.Minute):
		tb.Fatalf("local-up not ready after 10 minutes\n%s", u.stderr.String())
	}
	u.env = append(os.Environ(), "KUBECONFIG="+match(tb, u.welcome, `kubeconfig\s+(\S+)`),
		"PATH="+u.bin+":"+kubeBin+":"+os.Getenv("PATH"))
	return u
}

// command runs a command with the printed environment and returns its combined output.
func (u *localUp) command(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = u.env
	out, err := c.CombinedOutput()
	return string(out), err
}

// run runs a printed command with the printed environment; it must succeed.
func (u *localUp) run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := u.command(name, args...)
	if err != nil {
		tb.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// invokeHello runs the printed invoke command once: local-up prints its welcome only
// when the sample Agent is Ready, so there is nothing to wait or retry for (a retry
// would hide the 503 an Agent that is not Ready answers).
func (u *localUp) invokeHello(tb testing.TB, extra ...string) string {
	tb.Helper()
	return u.run(tb, "kubectl", append([]string{"agent", "invoke", "hello", "--input", "world", "--wait"}, extra...)...)
}

func TestMakeRun(t *testing.T) {
	u := startLocalUp(t)
	text := u.welcome
	t.Logf("local-up printed:\n%s", text)

	uiURL := match(t, text, `UI\s+(http://\S+)`)
	if want := fmt.Sprintf("http://localhost:%d", u.port); uiURL != want {
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
	if !strings.Contains(text, "kubectl get agents") || !strings.Contains(text, `kubectl agent invoke hello --input "world" --wait`) {
		t.Fatalf("welcome lacks the commands to try:\n%s", text)
	}
	if out := u.run(t, "kubectl", "get", "agents"); !regexp.MustCompile(`(?m)^hello\s`).MatchString(out) {
		t.Fatalf("kubectl get agents:\n%s", out)
	}
	if out := u.invokeHello(t); !strings.Contains(out, "hello from") || !strings.Contains(out, "world") {
		t.Fatalf("kubectl agent invoke printed %q", out)
	}

	// The same agent from the dashboard, through the tunnel, with its output
	// streamed from the agentlet as it is printed.
	d := signIn(t, u)
	lines := d.invokeStreamed(t, "from the dashboard")
	output, last := platformtest.StreamedOutput(t, lines)
	if !strings.Contains(output, "hello from") || !strings.Contains(output, "from the dashboard") ||
		last["type"] != "result" || last["phase"] != "Succeeded" || last["output_streamed"] != true {
		t.Fatalf("streamed invocation from the dashboard:\n%v", lines)
	}

	dashboardInBrowser(t, u, d)

	// What kube-controller-manager and kube-scheduler bring, checked last: the garbage
	// collection check deletes the sample Agent.
	clusterAsInACluster(t, u)

	// Ctrl-C stops everything.
	if err := u.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-u.exited:
		u.stopped = true
		if err != nil {
			t.Fatalf("local-up exited with %v\n%s", err, u.stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("local-up did not stop within 2 minutes of SIGINT")
	}
	// Every process local-up starts runs a binary from bin or keeps its files under
	// state (the controllers' kubeconfigs among them). A process killed on the way out
	// may still be tearing down for a moment after local-up exits; one really left
	// behind stays.
	left := framework.ProcessesMentioning(u.state, u.bin)
	for deadline := time.Now().Add(2 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = framework.ProcessesMentioning(u.state, u.bin) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("processes left behind after Ctrl-C:\n%s", strings.Join(left, "\n"))
	}
}

func match(t testing.TB, text, expr string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("welcome lacks %s:\n%s", expr, text)
	}
	return m[1]
}
