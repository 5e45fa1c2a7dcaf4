// Package shell tests the browser shell end to end with real parts: exo-app's
// API server with the shell endpoints, a real tunnel connection
// (pkg/tunnel) to an operator running pkg/shellexec with its own identity,
// a real kube-apiserver whose pods/exec reaches a node's kubelet API over
// TLS, and a real PTY on that node. browser_test.go drives real Chromium.
package shell

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/test/framework"
)

// managerUser is the manager's ServiceAccount identity: shells run as it.
const managerUser = "system:serviceaccount:agentkube-system:agentkube-manager"

var cluster struct {
	*framework.Cluster
	kubelet   *testKubelet
	namespace string
	agent     string
	// manager is a rest.Config for managerUser, allowed exactly what the
	// manager's ClusterRole allows for shells.
	manager *rest.Config
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := framework.Start(ctx, framework.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start cluster:", err)
		return 1
	}
	defer c.Stop()
	cluster.Cluster = c
	if err := setupCluster(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "set up cluster:", err)
		return 1
	}
	code := m.Run()
	cluster.kubelet.stop()
	if code == 0 {
		code = checkGoroutines()
	}
	return code
}

func setupCluster(ctx context.Context) error {
	c := cluster.Cluster
	work, err := os.MkdirTemp("", "exo-shell-node-")
	if err != nil {
		return err
	}
	if cluster.kubelet, err = startKubelet(ctx, c, "shell-node", work); err != nil {
		return err
	}
	cluster.namespace, cluster.agent = "shells", "coder"
	if err := c.EnsureNamespace(ctx, cluster.namespace); err != nil {
		return err
	}
	if _, err := createAgentPod(ctx, cluster.namespace, cluster.agent); err != nil {
		return err
	}

	// The manager's shell permissions: read pods, and both verbs on
	// pods/exec (WebSocket upgrades are authorized as get, SPDY as create).
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "agentkube-manager-shell"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"get", "create"}},
		},
	}
	if _, err := c.Kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "agentkube-manager-shell"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: managerUser}},
	}
	if _, err := c.Kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return err
	}
	cluster.manager, _, err = c.NewUser(managerUser, "system:serviceaccounts")
	return err
}

// createAgentPod creates an Agent and the pod its controller would create:
// named after it, controlled by it, with the runtime container, on the
// test node, Running.
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
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: agentkubev1alpha1.SchemeGroupVersion.String(), Kind: "Agent",
				Name: agent.Name, UID: agent.UID, Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: corev1.PodSpec{
			NodeName: cluster.kubelet.nodeName,
			Containers: []corev1.Container{
				{Name: "agentlet", Image: "agentkube/agentlet"},
				{Name: "runtime", Image: "agentkube/runtime-claudecode"},
			},
		},
	}
	pod, err = c.Kube.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod: %w", err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = "127.0.0.1"
	return c.Kube.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
}

// checkGoroutines fails the run if any goroutine of the shell path is still
// alive once every test has finished: relays, operator sessions, tunnel
// connections, exec streams. (Idle HTTP keep-alive goroutines of the test's
// clients are not the code under test and are not counted.)
func checkGoroutines() int {
	suspects := []string{
		"exo-in-go/exo/pkg/platform/shell.",
		"exo-in-go/exo/pkg/shellexec.",
		"exo-in-go/exo/pkg/tunnel.",
		"k8s.io/client-go/tools/remotecommand.",
		"creack/pty",
	}
	var leaked []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		leaked = leaked[:0]
		buf := make([]byte, 4<<20)
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
