package framework_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/poll"
)

// TestControllers starts a cluster of its own with kube-controller-manager and
// kube-scheduler (the package's shared cluster runs without them, as most suites do) and
// checks what they bring: garbage collection of an Agent's dependents, namespace deletion
// through custom resources, the shipped ClusterRoles aggregated into edit and view,
// kube-root-ca.crt, scheduling, and that Stop leaves none of them running.
func TestControllers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Read only once Stop has waited for both processes, which write them meanwhile.
	var kcmLog, schedulerLog bytes.Buffer
	logs := func() string {
		return fmt.Sprintf("kube-controller-manager's output:\n%s\nkube-scheduler's output:\n%s", &kcmLog, &schedulerLog)
	}
	c, err := framework.Start(ctx, framework.Options{Controllers: &framework.Controllers{ControllerManagerOut: &kcmLog, SchedulerOut: &schedulerLog}})
	if err != nil {
		t.Fatalf("%v\n%s", err, logs()) // a failed Start has stopped both
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop()
		}
		if t.Failed() {
			t.Log(logs())
		}
	}()

	t.Run("garbage collection", func(t *testing.T) { garbageCollection(ctx, t, c) })
	t.Run("namespace deletion", func(t *testing.T) { namespaceDeletion(ctx, t, c) })
	t.Run("ClusterRole aggregation", func(t *testing.T) { clusterRoleAggregation(ctx, t, c) })
	t.Run("scheduling", func(t *testing.T) { scheduling(ctx, t, c) })

	// Every process of the cluster names a file under its folder (kubeconfigs, the PKI).
	dir := c.Dir
	if left := framework.ProcessesMentioning(dir); !slices.ContainsFunc(left, func(p string) bool { return strings.Contains(p, "kube-controller-manager") }) ||
		!slices.ContainsFunc(left, func(p string) bool { return strings.Contains(p, "kube-scheduler") }) {
		t.Fatalf("kube-controller-manager and kube-scheduler should be running before Stop; processes of the cluster:\n%s", strings.Join(left, "\n"))
	}
	stopped = true
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := framework.ProcessesMentioning(dir); len(left) > 0 {
		t.Fatalf("processes left after Stop:\n%s", strings.Join(left, "\n"))
	}
}

func newAgent(ns, name string) *agentkubev1alpha1.Agent {
	return &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       agentkubev1alpha1.AgentSpec{Runtime: agentkubev1alpha1.RuntimeClaudeCode, Paused: true},
	}
}

// garbageCollection deletes an Agent (no manager runs here, so nothing but the garbage
// collector acts) and expects the ConfigMap and Secret it owns to go with it.
func garbageCollection(ctx context.Context, t *testing.T, c *framework.Cluster) {
	ns := c.CreateNamespace(t)
	agent, err := c.Agentkube.AgentkubeV1alpha1().Agents(ns).Create(ctx, newAgent(ns, "owner"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owned := metav1.ObjectMeta{Name: "owned", Namespace: ns, OwnerReferences: []metav1.OwnerReference{{
		APIVersion: agentkubev1alpha1.SchemeGroupVersion.String(), Kind: "Agent", Name: agent.Name, UID: agent.UID,
		Controller: new(true), BlockOwnerDeletion: new(true),
	}}}
	if _, err := c.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: owned}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: owned}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Agentkube.AgentkubeV1alpha1().Agents(ns).Delete(ctx, agent.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.UntilNamed(t, "the garbage collector deleting the Agent's ConfigMap and Secret", time.Minute, func() error {
		if _, err := c.Kube.CoreV1().ConfigMaps(ns).Get(ctx, owned.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ConfigMap: %v", err)
		}
		if _, err := c.Kube.CoreV1().Secrets(ns).Get(ctx, owned.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("secret: %v", err)
		}
		return nil
	})
}

// namespaceDeletion deletes a namespace holding an Agent, a ConfigMap and the
// kube-root-ca.crt the controller-manager publishes, and expects it gone: without the
// namespace controller it stays Terminating forever.
func namespaceDeletion(ctx context.Context, t *testing.T, c *framework.Cluster) {
	ns := c.CreateNamespace(t)
	if _, err := c.Agentkube.AgentkubeV1alpha1().Agents(ns).Create(ctx, newAgent(ns, "doomed"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Published with the CA of --root-ca-file, which must be kube-apiserver's.
	poll.UntilNamed(t, "kube-root-ca.crt in "+ns, time.Minute, func() error {
		cm, err := c.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data["ca.crt"] != string(c.Config.CAData) {
			return fmt.Errorf("ca.crt is not kube-apiserver's CA:\n%s", cm.Data["ca.crt"])
		}
		return nil
	})
	if err := c.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.UntilNamed(t, "namespace "+ns+" deleted", 2*time.Minute, func() error {
		got, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("phase %s, conditions %+v", got.Status.Phase, got.Status.Conditions)
	})
}

// clusterRoleAggregation applies the aggregated ClusterRoles the manager ships and
// expects the built-in edit and view roles to gain their rules, and RBAC to let a user
// bound to edit invoke Agents and one bound to view only read their logs.
func clusterRoleAggregation(ctx context.Context, t *testing.T, c *framework.Cluster) {
	manifest := filepath.Join(framework.RepoRoot(), "artifacts", "manager", "aggregated-api.yaml")
	// Only the aggregated roles: the file's APIService would point at a manager that is
	// not running, and an unavailable API group blocks namespace deletion.
	if _, _, err := c.Kubectl(ctx, "", "apply", "-f", manifest, "-l", "rbac.authorization.k8s.io/aggregate-to-view=true"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Kubectl(ctx, "", "apply", "-f", manifest, "-l", "rbac.authorization.k8s.io/aggregate-to-edit=true"); err != nil {
		t.Fatal(err)
	}
	grants := func(role, resource, verb string) func() bool {
		return func() bool {
			cr, err := c.Kube.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{})
			return err == nil && slices.ContainsFunc(cr.Rules, func(r rbacv1.PolicyRule) bool {
				return slices.Contains(r.APIGroups, "subresources.agentkube.io") && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb)
			})
		}
	}
	poll.UntilTrue(t, "edit aggregating create agents/invoke", time.Minute, grants("edit", "agents/invoke", "create"))
	poll.UntilTrue(t, "view aggregating get agents/log", time.Minute, grants("view", "agents/log", "get"))
	if grants("view", "agents/invoke", "create")() {
		t.Fatal("view grants agents/invoke: reading must not start runs")
	}

	ns := c.CreateNamespace(t)
	for user, role := range map[string]string{"editor": "edit", "viewer": "view"} {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
		}
		if _, err := c.Kube.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	allowed := func(user, verb, subresource string) bool {
		t.Helper()
		sar, err := c.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: "subresources.agentkube.io", Resource: "agents", Subresource: subresource, Name: "hello",
			},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	for _, tc := range []struct {
		user, verb, subresource string
		want                    bool
	}{
		{"editor", "create", "invoke", true},
		{"editor", "create", "attach", true},
		{"viewer", "get", "log", true},
		{"viewer", "create", "invoke", false},
		{"viewer", "create", "attach", false},
	} {
		if got := allowed(tc.user, tc.verb, tc.subresource); got != tc.want {
			t.Errorf("%s may %s agents/%s: %v, want %v", tc.user, tc.verb, tc.subresource, got, tc.want)
		}
	}
}

// scheduling registers a Node (no kubelet behind it; the test ends well within the node
// lifecycle controller's start-up grace period) and expects kube-scheduler to bind a
// pod that names no node to it.
func scheduling(ctx context.Context, t *testing.T, c *framework.Cluster) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "scheduling-test", Labels: map[string]string{"kubernetes.io/hostname": "scheduling-test"}}}
	node, err := c.Kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Kube.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	resources := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("10")}
	now := metav1.Now()
	node.Status = corev1.NodeStatus{
		Capacity: resources, Allocatable: resources,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}},
	}
	if _, err := c.Kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := c.CreateNamespace(t)
	c.CreatePod(t, ns, "unscheduled", nil, nil)
	// Gone at once when the test ends: no kubelet would confirm a graceful deletion, and
	// the namespace's deletion would wait for it.
	t.Cleanup(func() {
		_ = c.Kube.CoreV1().Pods(ns).Delete(context.Background(), "unscheduled", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	})
	poll.UntilNamed(t, "kube-scheduler binding the pod", time.Minute, func() error {
		pod, err := c.Kube.CoreV1().Pods(ns).Get(ctx, "unscheduled", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.Spec.NodeName != node.Name {
			return fmt.Errorf("nodeName %q, conditions %+v", pod.Spec.NodeName, pod.Status.Conditions)
		}
		return nil
	})
}
