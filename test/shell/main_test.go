//go:build linux

// Package shell tests the browser shell end to end, every hop real: exo-app's
// API server as cmd/exo-app assembles it (pkg/platform/app: the operator hub
// of pkg/platform/agentkube feeding pkg/platform/shell), agentkube-manager in
// managed mode as cmd/agentkube-manager assembles it (pkg/manager/app: the
// connector with pkg/shellexec as its shell executor), running as the
// manager's ServiceAccount with the
// RBAC of artifacts/manager/rbac.yaml, a real kube-apiserver whose pods/exec
// reaches a localnode (pkg/localnode) over TLS, and a PTY in the agent pod's
// runtime container, which localnode runs as host processes.
// browser_test.go drives real Chromium.
package shell

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
	"github.com/exo-in-go/exo/pkg/localnode"
	"github.com/exo-in-go/exo/pkg/localnode/localnodetest"
	"github.com/exo-in-go/exo/pkg/shellexec"
	"github.com/exo-in-go/exo/test/framework"
)

// managerUser is the manager's ServiceAccount identity: the connector and
// its shells run as it.
const managerUser = "system:serviceaccount:agentkube-system:agentkube-manager"

var cluster struct {
	*framework.Cluster
	node      *localnode.Node
	namespace string
	agent     string
	pod       *corev1.Pod // the agent's pod, Running on node
	// manager is a rest.Config for managerUser, allowed exactly what
	// artifacts/manager/rbac.yaml allows the manager.
	manager *rest.Config
	// dataDir holds files the tests' shells read (the node runs them on
	// this host).
	dataDir string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The connector's managers log through their own logger; this silences
	// controller-runtime's complaint about the unset global one.
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := framework.Start(ctx, framework.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start cluster:", err)
		return 1
	}
	defer c.Stop()
	cluster.Cluster = c
	tmp, err := os.MkdirTemp("", "exo-shell-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	cluster.dataDir = filepath.Join(tmp, "data")
	if err := os.Mkdir(cluster.dataDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// One node for the whole package, started here rather than with
	// localnodetest.Start (which ties it to a test) so every test and
	// benchmark shells into the same running pod.
	opts := localnodetest.PackageOptions(c, localnodetest.ShellImages(), filepath.Join(tmp, "node"))
	// Every container is a process that sleeps until stopped: the agent's
	// containers only have to stay up. pods/exec runs the host's /bin/sh
	// (shellexec.DefaultCommand names it by absolute path; it execs the
	// host's bash) in the runtime container's environment: working
	// directory and HOME in its root on the node, its PATH and variables.
	opts.NodeName = "shell-node"
	var stopNode func() error
	if cluster.node, stopNode, err = localnodetest.RunPackage(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := stopNode(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()

	if err := setupCluster(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "set up cluster:", err)
		return 1
	}
	// The pod's own processes (its containers); every shell adds to them
	// and must be gone when its session ends.
	baseline := localnodetest.Processes(cluster.pod.UID)
	code := m.Run()
	if code == 0 {
		code = checkGoroutines()
	}
	if code == 0 {
		code = checkProcesses(baseline)
	}
	return code
}

func setupCluster(ctx context.Context) error {
	c := cluster.Cluster
	// The manager's RBAC as shipped, bound to its ServiceAccount: the
	// connector's informers and the shells get no more than production.
	if err := c.EnsureNamespace(ctx, "agentkube-system"); err != nil {
		return err
	}
	if _, _, err := c.Kubectl(ctx, "", "apply", "-f", filepath.Join(framework.RepoRoot(), "artifacts", "manager", "rbac.yaml")); err != nil {
		return err
	}
	var err error
	if cluster.manager, _, err = c.NewUser(managerUser, "system:serviceaccounts", "system:serviceaccounts:agentkube-system"); err != nil {
		return err
	}

	cluster.namespace, cluster.agent = "shells", "coder"
	if err := c.EnsureNamespace(ctx, cluster.namespace); err != nil {
		return err
	}
	if cluster.pod, err = createAgentPod(ctx, cluster.namespace, cluster.agent); err != nil {
		return err
	}
	return nil
}

// createAgentPod creates an Agent and the pod its controller would create
// (named after it, controlled by it, labelled as the manager's, with the
// agentlet and runtime containers), and waits until the node runs it.
func createAgentPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	c := cluster.Cluster
	agent := &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       agentkubev1alpha1.AgentSpec{Runtime: agentkubev1alpha1.RuntimeClaudeCode},
	}
	agent, err := c.Agentkube.AgentkubeV1alpha1().Agents(namespace).Create(ctx, agent, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create agent: %w", err)
	}
	yes := true
	grace := int64(2)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels: map[string]string{ctrlutil.LabelManagedBy: ctrlutil.ManagedByValue},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: agentkubev1alpha1.SchemeGroupVersion.String(), Kind: "Agent",
				Name: agent.Name, UID: agent.UID, Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:                      cluster.node.Name(),
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{
				// Started in HOME (<rootfs>/root on the node), so bash's
				// prompt is a short "~" as in a container rather than the
				// node's long pod path: a prompt wider than the terminal
				// wraps, and readline's redraw after a resize then
				// overwrites lines in a replay (asciinema-player does not
				// reflow as xterm.js does).
				{Name: shellexec.DefaultContainer, Image: "ghcr.io/exo-in-go/agentkube-runtime-claudecode:test", WorkingDir: "/root"},
			},
		},
	}
	if pod, err = c.Kube.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create pod: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := c.Kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning && localnodetest.PodReady(p), nil
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s not running: phase %s: %w", namespace, name, pod.Status.Phase, err)
	}
	return pod, nil
}

// checkGoroutines fails the run if any goroutine of the shell path is still
// alive once every test has finished: relays, the hub, connectors,
// operator sessions, tunnel connections, exec streams and the node's exec
// sessions. (Idle HTTP keep-alive goroutines of the test's clients and the
// node's own loops are not the code under test and are not counted.)
func checkGoroutines() int {
	suspects := []string{
		"exo-in-go/exo/pkg/platform/shell.",
		"exo-in-go/exo/pkg/platform/agentkube.",
		"exo-in-go/exo/pkg/connect.",
		"exo-in-go/exo/pkg/shellexec.",
		"exo-in-go/exo/pkg/tunnel.",
		"exo-in-go/exo/pkg/localnode.(*Node).RunInContainer",
		"k8s.io/client-go/tools/remotecommand.",
	}
	var leaked []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		leaked = leaked[:0]
		buf := make([]byte, 8<<20)
		stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
		for _, st := range stacks {
			for _, s := range suspects {
				if strings.Contains(st, s) {
					leaked = append(leaked, st)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "leaked %d goroutines of the shell path:\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
	return 1
}

// checkProcesses fails the run if a shell's process outlived its session:
// the agent pod must be left with just its containers' processes.
func checkProcesses(baseline []int) int {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var extra []int
		for _, pid := range localnodetest.Processes(cluster.pod.UID) {
			if !slices.Contains(baseline, pid) {
				extra = append(extra, pid)
			}
		}
		if len(extra) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "shell processes left in the agent pod: %s\n", describeProcesses(extra))
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shellProcesses lists the agent pod's processes whose command line
// contains marker.
func shellProcesses(marker string) []int {
	var pids []int
	for _, pid := range localnodetest.Processes(cluster.pod.UID) {
		if strings.Contains(cmdline(pid), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
}

func describeProcesses(pids []int) string {
	var parts []string
	for _, pid := range pids {
		parts = append(parts, fmt.Sprintf("%d %q", pid, cmdline(pid)))
	}
	return strings.Join(parts, ", ")
}
