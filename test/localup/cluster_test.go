package localup

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
	"github.com/exo-in-go/exo/test/poll"
)

// clusterAsInACluster checks what kube-controller-manager and kube-scheduler bring to
// make run's cluster: the scheduler bound the sample Agent's pod, localnode's Node stays
// Ready under the node lifecycle controller, the shipped ClusterRoles are aggregated so
// that a user bound to edit may invoke the Agent and one bound to view may not, and the
// garbage collector removes the Agent's pod, token Secret and AgentRuns once the Agent
// is deleted (the manager puts no finalizer on an Agent: only the collector does this).
func clusterAsInACluster(t *testing.T, u *localUp) {
	cfg, err := clientcmd.BuildConfigFromFlags("", match(t, u.welcome, `kubeconfig\s+(\S+)`))
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cfg)
	agentkube := versioned.NewForConfigOrDie(cfg)
	agents := agentkube.AgentkubeV1alpha1().Agents("default")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	agent, err := agents.Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	events, err := kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=Scheduled,involvedObject.name=" + agent.Status.PodName})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events.Items, func(e corev1.Event) bool { return e.ReportingController == "default-scheduler" }) {
		t.Errorf("pod %s has no Scheduled event from default-scheduler: %+v", agent.Status.PodName, events.Items)
	}

	// By now the run is minutes old, past the node lifecycle controller's grace periods:
	// a Node whose Lease went stale would be Unknown and tainted.
	node, err := kube.CoreV1().Nodes().Get(ctx, "localnode", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := slices.IndexFunc(node.Status.Conditions, func(c corev1.NodeCondition) bool {
		return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
	})
	if ready < 0 || len(node.Spec.Taints) > 0 {
		t.Errorf("localnode is not Ready and untainted: conditions %+v, taints %+v", node.Status.Conditions, node.Spec.Taints)
	}

	rbacAggregation(ctx, t, u, kube)
	garbageCollection(ctx, t, u, kube, agentkube, agent.UID)
}

// rbacAggregation binds alice to the built-in edit ClusterRole and bob to view in the
// default namespace; what they may do with the Agent comes from the ClusterRoles the
// manager ships with aggregate-to-edit/view labels, folded in by the controller-manager.
func rbacAggregation(ctx context.Context, t *testing.T, u *localUp, kube kubernetes.Interface) {
	for user, role := range map[string]string{"alice": "edit", "bob": "view"} {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user + "-" + role, Namespace: "default"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
		}
		if _, err := kube.RbacV1().RoleBindings("default").Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	canInvoke := func(user string) (string, error) {
		out, err := u.command("kubectl", "auth", "can-i", "create", "agents.subresources.agentkube.io", "--subresource=invoke", "-n", "default", "--as", user)
		return strings.TrimSpace(out), err
	}
	if out, err := canInvoke("alice"); err != nil || out != "yes" {
		t.Errorf("kubectl auth can-i create agents/invoke --as alice (edit): %q, %v", out, err)
	}
	if out, err := canInvoke("bob"); err == nil || out != "no" {
		t.Errorf("kubectl auth can-i create agents/invoke --as bob (view): %q, %v", out, err)
	}
	if out := u.invokeHello(t, "--as", "alice"); !strings.Contains(out, "hello from") {
		t.Errorf("kubectl agent invoke --as alice printed %q", out)
	}
	if out, err := u.command("kubectl", "agent", "invoke", "hello", "--input", "world", "--as", "bob"); err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("kubectl agent invoke --as bob (view) = %v, want forbidden:\n%s", err, out)
	}
}

// garbageCollection deletes the sample Agent as a user would and waits for the
// collector to delete what it owns.
func garbageCollection(ctx context.Context, t *testing.T, u *localUp, kube kubernetes.Interface, agentkube versioned.Interface, uid types.UID) {
	owned := func() ([]string, error) {
		var names []string
		add := func(kind string, metas ...metav1.ObjectMeta) {
			for _, m := range metas {
				if slices.ContainsFunc(m.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == uid }) {
					names = append(names, kind+"/"+m.Name)
				}
			}
		}
		pods, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			add("pod", p.ObjectMeta)
		}
		secrets, err := kube.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, s := range secrets.Items {
			add("secret", s.ObjectMeta)
		}
		runs, err := agentkube.AgentkubeV1alpha1().AgentRuns("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, r := range runs.Items {
			add("agentrun", r.ObjectMeta)
		}
		return names, nil
	}
	before, err := owned()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"pod/", "secret/", "agentrun/"} {
		if !slices.ContainsFunc(before, func(n string) bool { return strings.HasPrefix(n, kind) }) {
			t.Fatalf("the sample Agent owns no %s to collect: %v", strings.TrimSuffix(kind, "/"), before)
		}
	}
	u.run(t, "kubectl", "delete", "agent", "hello")
	poll.UntilNamed(t, "the garbage collector deleting "+strings.Join(before, ", "), 2*time.Minute, func() error {
		left, err := owned()
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
}
