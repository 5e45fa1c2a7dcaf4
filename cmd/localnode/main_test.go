//go:build linux

package main_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	lt "github.com/exo-in-go/exo/pkg/localnode/localnodetest"
	"github.com/exo-in-go/exo/test/framework"
)

var (
	cluster *framework.Cluster
	binary  string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "localnode-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binary = filepath.Join(tmp, "localnode")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building localnode:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cluster, err = framework.Start(ctx, framework.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting test cluster:", err)
		return 1
	}
	defer cluster.Stop()
	return m.Run()
}

// startLocalnode runs the built binary as a user would, with flags and
// environment, and waits for its Node to be Ready.
func startLocalnode(t *testing.T, name, dir string) *exec.Cmd {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	files := map[string][]byte{
		"serving-ca.crt": cluster.PKI.KubeletServingCA.CertPEM,
		"serving-ca.key": cluster.PKI.KubeletServingCA.KeyPEM,
		"client-ca.crt":  cluster.PKI.KubeletClientCA.CertPEM,
		"images.yaml":    []byte("images:\n- image: \"docker.io/library/busybox*\"\n  binary: /bin/sh\n"),
	}
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(binary,
		"--kubeconfig", cluster.KubeconfigPath,
		"--node-name", name,
		"--listen-address", "127.0.0.1:0",
		"--serving-ca-cert-file", filepath.Join(dir, "serving-ca.crt"),
		"--serving-ca-key-file", filepath.Join(dir, "serving-ca.key"),
		"--client-ca-file", filepath.Join(dir, "client-ca.crt"),
		"--state-dir", filepath.Join(dir, "state"),
		"--node-labels", "exo.dev/test=cmd",
	)
	cmd.Env = append(os.Environ(), "LOCALNODE_IMAGE_MAP="+filepath.Join(dir, "images.yaml"), "LOCALNODE_LOG_LEVEL=debug")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("localnode output:\n%s", logs.String())
		}
	})
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := cluster.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && n.Labels["exo.dev/test"] == "cmd" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("node %s not ready:\n%s", name, logs.String())
	}
	return cmd
}

func busyPod(t *testing.T, ns, node string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "busy", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Containers: []corev1.Container{{
				Name:  "main",
				Image: "docker.io/library/busybox:1.36",
				// A background job, a job in its own session and a double
				// fork: nothing of this may survive localnode.
				Args: []string{"-c", `sleep 3600 & setsid sleep 3601 & (setsid sh -c 'sleep 3602 & sleep 3603' &); trap '' TERM; wait`},
			}},
		},
	}
	pod, err := cluster.Kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodReady)
	deadline := time.Now().Add(10 * time.Second)
	for len(lt.Processes(pod.UID)) < 7 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(lt.Processes(pod.UID)); n < 7 {
		t.Fatalf("want shim, sh, 4 sleeps and a sh: found %d processes", n)
	}
	return pod
}

// TestNoOrphanAfterSIGKILL: localnode killed with SIGKILL — no chance to clean
// up — still leaves no process behind.
func TestNoOrphanAfterSIGKILL(t *testing.T) {
	cmd := startLocalnode(t, "killed", "")
	ns := cluster.CreateNamespace(t)
	pod := busyPod(t, ns, "killed")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = cmd.Process.Wait()
	lt.WaitForNoProcesses(t, pod.UID, 10*time.Second)
}

// TestGracefulShutdown: SIGTERM stops every pod (within the shutdown grace
// period even for a process that ignores SIGTERM) and marks the node and its
// pods not ready.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	cmd := startLocalnode(t, "stopped", dir)
	ns := cluster.CreateNamespace(t)
	pod := busyPod(t, ns, "stopped")
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	state, _ := cmd.Process.Wait()
	if !state.Success() {
		t.Errorf("localnode exited with %v", state)
	}
	if took := time.Since(start); took > 25*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	if pids := lt.Processes(pod.UID); len(pids) > 0 {
		t.Errorf("processes left after localnode exited: %v", pids)
	}
	ctx := context.Background()
	n, err := cluster.Kube.CoreV1().Nodes().Get(ctx, "stopped", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionFalse {
			t.Errorf("node Ready=%s after shutdown", c.Status)
		}
	}
	p, err := cluster.Kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lt.PodReady(p) {
		t.Errorf("pod still Ready after its node stopped")
	}

	// Started again, the node runs its pod again, as a kubelet after a
	// reboot: a restart, on the same IP.
	startLocalnode(t, "stopped", dir)
	again := lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, func(p *corev1.Pod) bool {
		return lt.PodReady(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	if again.Status.PodIP != p.Status.PodIP {
		t.Errorf("pod IP %s after the restart, was %s", again.Status.PodIP, p.Status.PodIP)
	}
	if last := again.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil {
		t.Errorf("no last state after the restart")
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--image", "no-equals-sign"},
		{"--register-with-taints", "a=b:Sometimes"},
		{"--authorization-mode", "Maybe"},
		{"--pod-cidr", "10.0.0.0/8"},
	} {
		out, err := exec.Command(binary, append([]string{"--kubeconfig", cluster.KubeconfigPath, "--state-dir", t.TempDir()}, args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "localnode:") {
			t.Errorf("%v: err %v, output %q", args, err, out)
		}
	}
}
