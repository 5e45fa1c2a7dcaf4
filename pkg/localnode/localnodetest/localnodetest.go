//go:build linux

// Package localnodetest starts a localnode in-process against a test cluster
// (test/framework), so tests can run real pods — agent pods with the real
// agentlet binary — and use kubectl exec, logs and attach on them.
//
//	cluster, _ := framework.Start(ctx, framework.Options{})
//	agentlet := localnodetest.BuildAgentlet(t)
//	node := localnodetest.Start(t, cluster, localnodetest.AgentImages(agentlet))
//
// The node binds pods that have no node (there is no kube-scheduler in a test
// cluster), trusts kube-apiserver's kubelet client certificate and serves with a
// certificate kube-apiserver trusts, and is stopped — every process it started
// ended — when the test ends.
package localnodetest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/exo-in-go/exo/pkg/localnode"
	"github.com/exo-in-go/exo/test/framework"
)

// DefaultNodeName is the name Start gives the node unless told otherwise.
const DefaultNodeName = "localnode"

// Start runs a localnode against cluster until the test ends. tweaks may
// change the options (node name, labels, taints, backoff…) before it starts.
func Start(t testing.TB, cluster *framework.Cluster, images localnode.ImageMap, tweaks ...func(*localnode.Options)) *localnode.Node {
	t.Helper()
	opts := Options(t, cluster, images)
	for _, f := range tweaks {
		f(&opts)
	}
	n, err := localnode.New(opts)
	if err != nil {
		t.Fatalf("localnode: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-n.Done():
		case <-time.After(time.Minute):
			t.Errorf("localnode %s did not stop within a minute", n.Name())
		}
	})
	readyCtx, readyCancel := context.WithTimeout(context.Background(), time.Minute)
	defer readyCancel()
	if err := n.WaitReady(readyCtx); err != nil {
		t.Fatalf("localnode %s not ready: %v", opts.NodeName, err)
	}
	return n
}

// Options are the options Start uses: the cluster's admin config and kubelet
// PKI, a random kubelet port, a state directory removed after the test, short
// restart back-offs, and binding of unscheduled pods. Logs go to the test log
// when LOCALNODE_TEST_LOG is set.
func Options(t testing.TB, cluster *framework.Cluster, images localnode.ImageMap) localnode.Options {
	o := PackageOptions(cluster, images, t.TempDir())
	o.Logger = testLogger(t)
	return o
}

// PackageOptions are Options for a node that serves a whole test package,
// started from TestMain (which has no testing.TB), with its state in
// stateDir.
func PackageOptions(cluster *framework.Cluster, images localnode.ImageMap, stateDir string) localnode.Options {
	return localnode.Options{
		Config:              cluster.Config,
		NodeName:            DefaultNodeName,
		ImageMap:            images,
		StateDir:            stateDir,
		ListenAddress:       "127.0.0.1:0",
		ServingCACertPEM:    cluster.PKI.KubeletServingCA.CertPEM,
		ServingCAKeyPEM:     cluster.PKI.KubeletServingCA.KeyPEM,
		ClientCAPEM:         cluster.PKI.KubeletClientCA.CertPEM,
		BindUnscheduledPods: true,
		RestartBackoff:      time.Second,
		MaxRestartBackoff:   10 * time.Second,
		ShutdownGracePeriod: 5 * time.Second,
	}
}

// RunPackage starts a node for a whole test package and waits until it is
// ready. stop ends it and waits for its pods' processes (at most a minute).
func RunPackage(ctx context.Context, opts localnode.Options) (n *localnode.Node, stop func() error, err error) {
	if n, err = localnode.New(opts); err != nil {
		return nil, nil, fmt.Errorf("localnode: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	go func() { _ = n.Run(runCtx) }()
	stop = func() error {
		cancel()
		select {
		case <-n.Done():
			return nil
		case <-time.After(time.Minute):
			return fmt.Errorf("localnode %s did not stop within a minute", opts.NodeName)
		}
	}
	readyCtx, readyCancel := context.WithTimeout(ctx, time.Minute)
	defer readyCancel()
	if err := n.WaitReady(readyCtx); err != nil {
		_ = stop()
		return nil, nil, fmt.Errorf("localnode %s not ready: %w", opts.NodeName, err)
	}
	return n, stop, nil
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("LOCALNODE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// AgentletImagePattern matches the agentlet image however the manager names
// it (registry, tag).
const AgentletImagePattern = "*agentkube-agentlet*"

// AgentletMapping runs the agentlet binary at path for the agentlet image,
// whose container in an Agent pod only installs the agentlet into the pod's
// shared volume (`agentlet install DEST`).
func AgentletMapping(path string) localnode.ImageMapping {
	return localnode.ImageMapping{Image: AgentletImagePattern, Binary: path}
}

// StandIn maps images matching pattern to a process that sleeps until stopped
// (a runtime CLI image whose container only has to stay up), and lets
// containers that set command run host commands.
func StandIn(pattern string) localnode.ImageMapping {
	return localnode.ImageMapping{Image: pattern, Binary: "/bin/sleep", Args: []string{"infinity"}}
}

// RuntimeStandIn is StandIn for runtime images, whose container in an Agent
// pod runs the installed agentlet: it listens on its pod IP
// (AGENTLET_LISTEN_ADDRESS), since every pod shares the host's network.
func RuntimeStandIn(pattern string) localnode.ImageMapping {
	m := StandIn(pattern)
	m.Env = map[string]string{"AGENTLET_LISTEN_ADDRESS": "$(" + localnode.EnvPodIP + "):8090"}
	return m
}

// AgentImages maps the agentlet image to the agentlet binary at path and
// every other image to RuntimeStandIn.
func AgentImages(agentletPath string) localnode.ImageMap {
	return localnode.ImageMap{Images: []localnode.ImageMapping{AgentletMapping(agentletPath), RuntimeStandIn("*")}}
}

// ShellImages maps every image to a stand-in so pods whose containers set
// command (sh -c …) run it with the host's tools.
func ShellImages() localnode.ImageMap {
	return localnode.ImageMap{Images: []localnode.ImageMapping{StandIn("*")}}
}

// BuildAgentlet builds cmd/agentlet into a temporary directory and returns
// its path.
func BuildAgentlet(t testing.TB) string {
	return BuildBinary(t, "./cmd/agentlet")
}

// BuildBinary builds a main package of this repository (a path relative to the
// repository root) into a temporary directory.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = framework.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, stderr.String())
	}
	return out
}

// Processes lists the live processes of a pod (those whose environment carries
// its UID), for checking that a stopped pod left nothing behind.
func Processes(uid types.UID) []int {
	marker := []byte(localnode.EnvPodUID + "=" + string(uid) + "\x00")
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, marker) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
				continue // a zombie about to be reaped
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// WaitForNoProcesses fails the test if processes of the pod remain after
// timeout.
func WaitForNoProcesses(t testing.TB, uid types.UID, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pids := Processes(uid)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s still has processes: %s", uid, describe(pids))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describe(pids []int) string {
	var parts []string
	for _, pid := range pids {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		parts = append(parts, fmt.Sprintf("%d %q", pid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")))
	}
	return strings.Join(parts, ", ")
}

// WaitForPod polls the pod until cond holds and returns it.
func WaitForPod(t testing.TB, cluster *framework.Cluster, namespace, name string, timeout time.Duration, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: condition not met within %s; last status: %s", namespace, name, timeout, statusString(last))
	}
	return last
}

// PodReady says whether the pod's Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodPhase returns a condition for WaitForPod.
func PodPhase(phase corev1.PodPhase) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool { return p.Status.Phase == phase }
}

func statusString(p *corev1.Pod) string {
	if p == nil {
		return "<no pod>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s reason=%q message=%q node=%q ip=%s", p.Status.Phase, p.Status.Reason, p.Status.Message, p.Spec.NodeName, p.Status.PodIP)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, " [%s restarts=%d ready=%v", cs.Name, cs.RestartCount, cs.Ready)
		switch {
		case cs.State.Waiting != nil:
			fmt.Fprintf(&b, " waiting %s: %s", cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Running != nil:
			b.WriteString(" running")
		case cs.State.Terminated != nil:
			fmt.Fprintf(&b, " terminated %d %s: %s", cs.State.Terminated.ExitCode, cs.State.Terminated.Reason, cs.State.Terminated.Message)
		}
		b.WriteString("]")
	}
	return b.String()
}
