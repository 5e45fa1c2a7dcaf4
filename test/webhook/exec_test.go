package webhook_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/exo-in-go/exo/pkg/webhook"
)

// The pods have no node, so kube-apiserver fails an admitted exec after admission
// with this error; seeing it proves the webhook let the request through.
const admittedButNoNode = "does not have a host assigned"

const denialMark = `admission webhook "pods-exec.agentkube.io" denied the request`

func TestExecIntoManagedPods(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	ns := cluster.CreateNamespace(t)

	// Users and the manager's ServiceAccount may get pods and exec/attach: RBAC alone
	// would let them in, so any refusal below is the webhook's.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "exec", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach"}, Verbs: []string{"create", "get"}},
			{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"update", "patch"}},
		},
	}
	if _, err := cluster.Kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "exec", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "exec"},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"},
			{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: breakGlassGroup},
			{Kind: rbacv1.ServiceAccountKind, Namespace: systemNamespace, Name: "agentkube-manager"},
		},
	}
	if _, err := cluster.Kube.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	aliceConfig, alice := cluster.User(t, "alice")
	_, oncall := cluster.User(t, "oncall", breakGlassGroup)

	agentLabels := map[string]string{webhook.LabelManagedBy: webhook.ManagedByValue, webhook.LabelAgent: "reviewer"}
	bastionLabels := map[string]string{webhook.LabelManagedBy: webhook.ManagedByValue, webhook.LabelTool: "orders-db"}
	cluster.CreatePod(t, ns, "reviewer", agentLabels, nil)
	cluster.CreatePod(t, ns, "orders-db-bastion", bastionLabels, nil)
	cluster.CreatePod(t, ns, "owned", nil, []metav1.OwnerReference{{
		APIVersion: "agentkube.io/v1alpha1", Kind: "MCP", Name: "github", UID: types.UID("00000000-0000-0000-0000-000000000001"),
	}})
	cluster.CreatePod(t, ns, "web", map[string]string{"app": "web"}, nil)

	exec := func(kubeconfig string, pod string, extra ...string) string {
		t.Helper()
		args := append([]string{"exec", "-n", ns}, extra...)
		args = append(args, pod, "--", "true")
		_, stderr, err := cluster.Kubectl(ctx, kubeconfig, args...)
		if err == nil {
			t.Fatalf("kubectl exec %s succeeded on a pod without a node", pod)
		}
		return stderr
	}
	denied := func(t *testing.T, stderr string, want ...string) {
		t.Helper()
		if !strings.Contains(stderr, denialMark) {
			t.Fatalf("want the webhook's denial, got: %s", stderr)
		}
		for _, w := range want {
			if !strings.Contains(stderr, w) {
				t.Fatalf("denial lacks %q: %s", w, stderr)
			}
		}
	}
	admitted := func(t *testing.T, stderr string) {
		t.Helper()
		if strings.Contains(stderr, "denied the request") || !strings.Contains(stderr, admittedButNoNode) {
			t.Fatalf("want admission to pass (and exec to fail for want of a node), got: %s", stderr)
		}
	}

	t.Run("user into agent pod is refused and sent to agents/attach", func(t *testing.T) {
		stderr := exec(alice, "reviewer")
		denied(t, stderr, "agents/attach", "kubectl agent attach reviewer -n "+ns)
		t.Log(strings.TrimSpace(stderr))
	})
	t.Run("user into bastion pod is refused", func(t *testing.T) {
		denied(t, exec(alice, "orders-db-bastion"), `Tool "orders-db"`, "kubectl agent attach")
	})
	t.Run("user into pod owned by an agentkube.io object is refused", func(t *testing.T) {
		denied(t, exec(alice, "owned"), `MCP "github"`)
	})
	t.Run("cluster admin is refused too", func(t *testing.T) {
		denied(t, exec("", "reviewer"), "agents/attach")
	})
	t.Run("manager ServiceAccount is admitted", func(t *testing.T) {
		admitted(t, exec("", "reviewer", "--as", managerUser))
	})
	t.Run("break-glass group is admitted", func(t *testing.T) {
		admitted(t, exec(oncall, "reviewer"))
	})
	t.Run("unrelated pod is unaffected", func(t *testing.T) {
		admitted(t, exec(alice, "web"))
	})
	t.Run("user attach to agent pod is refused", func(t *testing.T) {
		_, stderr, err := cluster.Kubectl(ctx, alice, "attach", "-n", ns, "reviewer", "-c", "main")
		if err == nil {
			t.Fatal("kubectl attach succeeded on a pod without a node")
		}
		denied(t, stderr, "attach to agent pod", "kubectl agent attach reviewer")
	})
	t.Run("user debug container in agent pod is refused, in unrelated pod admitted", func(t *testing.T) {
		kube, err := kubernetes.NewForConfig(aliceConfig)
		if err != nil {
			t.Fatal(err)
		}
		debug := func(name string) error {
			pod, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "example.invalid/debug:1"},
			})
			_, err = kube.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, name, pod, metav1.UpdateOptions{})
			return err
		}
		err = debug("reviewer")
		if err == nil || !strings.Contains(err.Error(), denialMark) || !strings.Contains(err.Error(), "debug containers in agent pod") {
			t.Fatalf("want the webhook's denial, got %v", err)
		}
		if err := debug("web"); err != nil {
			t.Fatalf("debug container in an unrelated pod: %v", err)
		}
	})
}
