package cluster_test

import (
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/exo-in-go/exo/pkg/webhook"
)

const (
	execDenied  = `admission webhook "pods-exec.agentkube.io" denied the request`
	guardDenied = `admission webhook "pods-managed.agentkube.io" denied the request`
	// The pods have no node, so kube-apiserver fails an admitted exec after admission
	// with this error; seeing it proves the exec gate let the request through.
	admittedButNoNode = "does not have a host assigned"
)

// TestItem12_PatchAwayManagedLabelsThenExec: a user who may patch pods and exec into
// them strips an agent pod of what the exec gate recognises it by (labels, owner
// reference), through the pod and through pods/status, or swaps its image, so as to
// get a shell that agents/attach would have recorded. Every step is refused; the
// garbage collector may still orphan the pod (it stays gated), and the manager may
// still relabel its pod.
func TestItem12_PatchAwayManagedLabelsThenExec(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 3*time.Minute)
	ns := cluster.CreateNamespace(t)
	grant(t, ns, "tamper", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create", "get"}},
	}, user("mallory"), user(gcUser), managerSubject())
	_, mallory := cluster.User(t, "mallory")

	agentOwner := metav1.OwnerReference{
		APIVersion: "agentkube.io/v1alpha1", Kind: "Agent", Name: "reviewer",
		UID: types.UID("00000000-0000-0000-0000-00000000a001"), Controller: new(true),
	}
	cluster.CreatePod(t, ns, "reviewer", map[string]string{
		webhook.LabelManagedBy: webhook.ManagedByValue, webhook.LabelAgent: "reviewer", "team": "a",
	}, []metav1.OwnerReference{agentOwner})
	cluster.CreatePod(t, ns, "github-mcp", nil, []metav1.OwnerReference{{
		APIVersion: "agentkube.io/v1alpha1", Kind: "MCP", Name: "github", UID: types.UID("00000000-0000-0000-0000-00000000a002"),
	}})
	cluster.CreatePod(t, ns, "web", map[string]string{"app": "web"}, nil)

	kubectl := func(kubeconfig string, args ...string) (string, error) {
		t.Helper()
		_, stderr, err := cluster.Kubectl(ctx, kubeconfig, append([]string{"-n", ns}, args...)...)
		return stderr, err
	}
	// refused reports and goes on, so that against a webhook without the guard the
	// whole attack runs: strip everything, then exec.
	refused := func(t *testing.T, mark, what string, kubeconfig string, args ...string) {
		t.Helper()
		stderr, err := kubectl(kubeconfig, args...)
		if err == nil {
			t.Errorf("%s: succeeded, want the webhook's refusal", what)
			return
		}
		if !strings.Contains(stderr, mark) {
			t.Errorf("%s: want %q, got: %s", what, mark, stderr)
		}
	}
	allowed := func(t *testing.T, what string, kubeconfig string, args ...string) {
		t.Helper()
		if stderr, err := kubectl(kubeconfig, args...); err != nil {
			t.Fatalf("%s: %v: %s", what, err, stderr)
		}
	}
	execAdmitted := func(t *testing.T, kubeconfig, pod string) {
		t.Helper()
		stderr, err := kubectl(kubeconfig, "exec", pod, "--", "true")
		if err == nil || strings.Contains(stderr, "denied the request") || !strings.Contains(stderr, admittedButNoNode) {
			t.Fatalf("exec into %s: want admission to pass (and exec to fail for want of a node), got %v: %s", pod, err, stderr)
		}
	}

	t.Run("exec into the agent pod is refused to begin with", func(t *testing.T) {
		refused(t, execDenied, "exec", mallory, "exec", "reviewer", "--", "true")
	})
	t.Run("the user cannot strip the pod of what marks it the manager's", func(t *testing.T) {
		refused(t, guardDenied, "removing the labels", mallory,
			"label", "pod", "reviewer", webhook.LabelManagedBy+"-", webhook.LabelAgent+"-")
		refused(t, guardDenied, "relabelling to another agent", mallory,
			"label", "pod", "reviewer", webhook.LabelAgent+"=someone-else", "--overwrite")
		refused(t, guardDenied, "removing the owner reference", mallory,
			"patch", "pod", "reviewer", "--type=json", "-p", `[{"op":"remove","path":"/metadata/ownerReferences"}]`)
		refused(t, guardDenied, "removing the labels through pods/status", mallory,
			"patch", "pod", "reviewer", "--subresource=status", "--type=merge",
			"-p", `{"metadata":{"labels":{"app.kubernetes.io/managed-by":null,"agentkube.io/agent":null}}}`)
		refused(t, guardDenied, "swapping the image", mallory,
			"set", "image", "pod/reviewer", "main=example.invalid/evil:1")
		refused(t, guardDenied, "removing the owner reference of a pod gated by it alone", mallory,
			"patch", "pod", "github-mcp", "--type=json", "-p", `[{"op":"remove","path":"/metadata/ownerReferences"}]`)
	})
	t.Run("so exec stays refused", func(t *testing.T) {
		refused(t, execDenied, "exec after the attempts", mallory, "exec", "reviewer", "--", "true")
		refused(t, execDenied, "exec into the MCP pod", mallory, "exec", "github-mcp", "--", "true")
		pod, err := cluster.Kube.CoreV1().Pods(ns).Get(ctx, "reviewer", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Labels[webhook.LabelManagedBy] != webhook.ManagedByValue || pod.Labels[webhook.LabelAgent] != "reviewer" ||
			len(pod.OwnerReferences) != 1 || pod.Spec.Containers[0].Image != "example.invalid/main:1" {
			t.Fatalf("the pod was changed: labels %v, owners %v, image %s", pod.Labels, pod.OwnerReferences, pod.Spec.Containers[0].Image)
		}
	})
	t.Run("changes to other labels and annotations, and to unrelated pods, pass", func(t *testing.T) {
		allowed(t, "labelling", mallory, "label", "pod", "reviewer", "team=b", "--overwrite")
		allowed(t, "annotating", mallory, "annotate", "pod", "reviewer", "note=looked at it")
		allowed(t, "relabelling an unrelated pod", mallory, "label", "pod", "web", "app=web2", "--overwrite")
		allowed(t, "swapping an unrelated pod's image", mallory, "set", "image", "pod/web", "main=example.invalid/other:1")
	})
	t.Run("the garbage collector may orphan the pod, which stays gated by its labels", func(t *testing.T) {
		refused(t, guardDenied, "the garbage collector's identity removing labels", "",
			"--as", gcUser, "label", "pod", "reviewer", webhook.LabelAgent+"-")
		allowed(t, "the garbage collector removing the owner reference", "",
			"--as", gcUser, "patch", "pod", "reviewer", "--type=json", "-p", `[{"op":"remove","path":"/metadata/ownerReferences"}]`)
		refused(t, execDenied, "exec into the orphaned pod", mallory, "exec", "reviewer", "--", "true")
	})
	t.Run("the manager may relabel its pod", func(t *testing.T) {
		allowed(t, "the manager removing its labels", "",
			"--as", managerUser, "label", "pod", "reviewer", webhook.LabelManagedBy+"-", webhook.LabelAgent+"-")
		pod, err := cluster.Kube.CoreV1().Pods(ns).Get(ctx, "reviewer", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Labels[webhook.LabelManagedBy] != "" || pod.Labels[webhook.LabelAgent] != "" {
			t.Fatalf("labels still there: %v", pod.Labels)
		}
		// Now that the manager released it, the pod is an ordinary pod: this is what the
		// refusals above kept the user from doing alone.
		execAdmitted(t, mallory, "reviewer")
	})
}
