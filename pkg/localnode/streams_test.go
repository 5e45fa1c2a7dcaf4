//go:build linux

package localnode_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/exo-in-go/exo/pkg/certs"
	lt "github.com/exo-in-go/exo/pkg/localnode/localnodetest"
)

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestKubectlExec: output, stderr, stdin and the exit code of a command run
// with kubectl exec through kube-apiserver.
func TestKubectlExec(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := createPod(t, shellPod(ns, "target", `exec sleep 3600`))
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodReady)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cmd := cluster.KubectlCommand(ctx, "", "exec", "-n", ns, pod.Name, "--", "sh", "-c", `echo out; echo err >&2; echo "pod=$HOSTNAME ip=$LOCALNODE_POD_IP"; exit 7`)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := exitCode(err); code != 7 {
		t.Fatalf("kubectl exec exit code %d (%v), want 7; stderr: %s", code, err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "out\npod=target ip=127.") {
		t.Errorf("stdout %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "err") {
		t.Errorf("stderr %q", stderr.String())
	}

	out, _, err := cluster.KubectlWithInput(ctx, "", strings.NewReader("line one\nline two\n"), "exec", "-i", "-n", ns, pod.Name, "--", "wc", "-l")
	if err != nil || strings.TrimSpace(out) != "2" {
		t.Errorf("exec -i wc -l: %q, %v", out, err)
	}

	_, stderrText, err := cluster.Kubectl(ctx, "", "exec", "-n", ns, pod.Name, "--", "no-such-command")
	if err == nil || !strings.Contains(stderrText, "no-such-command") {
		t.Errorf("exec of a missing command: err %v, stderr %q", err, stderrText)
	}
}

// TestKubectlExecInteractive drives `kubectl exec -it … sh` through a
// terminal: type a command and read its output, resize the terminal and see
// the shell's terminal follow, and exit with a code.
func TestKubectlExecInteractive(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := createPod(t, shellPod(ns, "shell", `exec sleep 3600`))
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodReady)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cmd := cluster.KubectlCommand(ctx, "", "exec", "-it", "-n", ns, pod.Name, "--", "sh")
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	out := newTermReader(term)

	if _, err := term.Write([]byte("echo hi-$((40+2))\n")); err != nil {
		t.Fatal(err)
	}
	if !out.waitFor("hi-42", 20*time.Second) {
		t.Fatalf("no echo from the shell; got %q", out.String())
	}
	if _, err := term.Write([]byte("stty size\n")); err != nil {
		t.Fatal(err)
	}
	if !out.waitFor("24 80", 10*time.Second) {
		t.Fatalf("terminal size not 24x80; got %q", out.String())
	}
	if err := pty.Setsize(term, &pty.Winsize{Rows: 40, Cols: 123}); err != nil {
		t.Fatal(err)
	}
	resized := false
	for i := 0; i < 20 && !resized; i++ {
		_, _ = term.Write([]byte("stty size\n"))
		resized = out.waitFor("40 123", 500*time.Millisecond)
	}
	if !resized {
		t.Fatalf("resize did not reach the shell; got %q", out.String())
	}
	if _, err := term.Write([]byte("exit 3\n")); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(cmd.Wait()); code != 3 {
		t.Errorf("kubectl exec -it exit code %d, want 3", code)
	}
}

// termReader collects what a terminal prints.
type termReader struct {
	buf    bytes.Buffer
	update chan struct{}
	mu     chan struct{}
}

func newTermReader(r io.Reader) *termReader {
	tr := &termReader{update: make(chan struct{}, 1), mu: make(chan struct{}, 1)}
	tr.mu <- struct{}{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			<-tr.mu
			tr.buf.Write(b[:n])
			tr.mu <- struct{}{}
			select {
			case tr.update <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return tr
}

func (tr *termReader) String() string {
	<-tr.mu
	defer func() { tr.mu <- struct{}{} }()
	return tr.buf.String()
}

func (tr *termReader) waitFor(s string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		if strings.Contains(tr.String(), s) {
			return true
		}
		select {
		case <-tr.update:
		case <-deadline:
			return false
		}
	}
}

// TestKubectlLogsFollow: kubectl logs -f shows lines as they are written and
// ends when the container does.
func TestKubectlLogsFollow(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := createPod(t, shellPod(ns, "talker", `for i in 1 2 3 4 5; do echo line-$i; sleep 0.7; done; echo bye >&2`))
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodPhase(corev1.PodRunning))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cmd := cluster.KubectlCommand(ctx, "", "logs", "-f", "-n", ns, pod.Name)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	first, err := r.ReadString('\n')
	if err != nil || first != "line-1\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	// The container still runs: the line came while following.
	p, _ := cluster.Kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1GetOptions())
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s after the first line, want Running", p.Status.Phase)
	}
	rest, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kubectl logs -f: %v", err)
	}
	if string(rest) != "line-2\nline-3\nline-4\nline-5\nbye\n" {
		t.Errorf("rest of the log %q", rest)
	}

	out, _, err := cluster.Kubectl(ctx, "", "logs", "-n", ns, pod.Name, "--tail=2", "--timestamps")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " line-5") || !strings.HasSuffix(lines[1], " bye") {
		t.Errorf("logs --tail=2 --timestamps:\n%s", out)
	}
	if _, err := time.Parse(time.RFC3339Nano, strings.Fields(lines[0])[0]); err != nil {
		t.Errorf("timestamp: %v", err)
	}
	out, _, err = cluster.Kubectl(ctx, "", "logs", "-n", ns, pod.Name, "--limit-bytes=9")
	if err != nil || out != "line-1\nli" {
		t.Errorf("logs --limit-bytes=9: %q, %v", out, err)
	}
}

// TestKubectlAttach sends input to a container's stdin and reads its output.
func TestKubectlAttach(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	p := shellPod(ns, "reader", `while read l; do echo "got $l"; done`)
	p.Spec.Containers[0].Stdin = true
	pod := createPod(t, p)
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodReady)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cmd := cluster.KubectlCommand(ctx, "", "attach", "-i", "-n", ns, pod.Name)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	// kubectl prints nothing until the stream is up: send until the
	// container answers.
	got := make(chan string, 1)
	go func() {
		line, _ := r.ReadString('\n')
		got <- line
	}()
	for i := 0; ; i++ {
		_, _ = io.WriteString(stdin, "hello\n")
		select {
		case line := <-got:
			if line != "got hello\n" {
				t.Fatalf("attach read %q", line)
			}
			stdin.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return
		case <-time.After(time.Second):
			if i > 20 {
				t.Fatal("no answer through attach")
			}
		}
	}
}

// TestKubeletAPIRequiresAuthentication: the kubelet port refuses anonymous
// callers and certificates from other CAs; kube-apiserver's client
// certificate gets through.
func TestKubeletAPIRequiresAuthentication(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := createPod(t, shellPod(ns, "secret-logs", `echo top-secret; exec sleep 3600`))
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodReady)
	url := "https://" + node.Addr() + "/containerLogs/" + ns + "/" + pod.Name + "/main"
	servingPool, _ := certs.Pool(cluster.PKI.KubeletServingCA.CertPEM)

	get := func(cert *tls.Certificate) (int, string, error) {
		cfg := &tls.Config{RootCAs: servingPool}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := get(nil); err != nil || code != http.StatusUnauthorized {
		t.Errorf("anonymous: %d %q %v, want 401", code, body, err)
	}
	otherCA, _ := certs.NewCA("other", time.Hour)
	intruder, _ := otherCA.IssueClient("system:admin", []string{"system:masters"}, time.Hour)
	pair, _ := tls.X509KeyPair(intruder.CertPEM, intruder.KeyPEM)
	if code, body, err := get(&pair); err == nil && code == http.StatusOK {
		t.Errorf("certificate from another CA accepted: %d %q", code, body)
	}
	// A user the apiserver knows but RBAC does not allow nodes/proxy.
	nobody, _ := cluster.PKI.KubeletClientCA.IssueClient("nobody", nil, time.Hour)
	pair, _ = tls.X509KeyPair(nobody.CertPEM, nobody.KeyPEM)
	if code, body, err := get(&pair); err != nil || code != http.StatusForbidden {
		t.Errorf("unauthorized user: %d %q %v, want 403", code, body, err)
	}
	apiserver, _ := tls.X509KeyPair(cluster.PKI.KubeletClient.CertPEM, cluster.PKI.KubeletClient.KeyPEM)
	if code, body, err := get(&apiserver); err != nil || code != http.StatusOK || body != "top-secret\n" {
		t.Errorf("kube-apiserver's client certificate: %d %q %v", code, body, err)
	}
}

func metav1GetOptions() metav1.GetOptions { return metav1.GetOptions{} }

// TestTTYContainerAttach: a container with tty and stdin runs on a terminal;
// kubectl attach -it reaches it, and what it prints is in its log.
func TestTTYContainerAttach(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	p := shellPod(ns, "tty", `exec sh -i`)
	p.Spec.Containers[0].Stdin = true
	p.Spec.Containers[0].TTY = true
	pod := createPod(t, p)
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodReady)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cmd := cluster.KubectlCommand(ctx, "", "attach", "-it", "-n", ns, pod.Name)
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 90})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	out := newTermReader(term)
	got := false
	for i := 0; i < 20 && !got; i++ {
		_, _ = term.Write([]byte("echo tty-$((1+2))\n"))
		got = out.waitFor("tty-3", time.Second)
	}
	if !got {
		t.Fatalf("no answer through attach -it; got %q", out.String())
	}
	resized := false
	for i := 0; i < 20 && !resized; i++ {
		_, _ = term.Write([]byte("stty size\n"))
		resized = out.waitFor("30 90", 500*time.Millisecond)
	}
	if !resized {
		t.Errorf("attach did not size the container's terminal; got %q", out.String())
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	logs, _, err := cluster.Kubectl(ctx, "", "logs", "-n", ns, pod.Name)
	if err != nil || !strings.Contains(logs, "tty-3") {
		t.Errorf("logs of the tty container: %q, %v", logs, err)
	}
}
