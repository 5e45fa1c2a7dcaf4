package cluster_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
)

const requesterDenied = `admission webhook "agentruns-requester.agentkube.io" denied the request`

// TestItem21_ForgedRequesterRefused: a user who may create AgentRuns writes someone
// else into spec.requester, so that the run history blames them. Refused; a run
// without a requester gets the caller's identity; only the manager (agents/invoke,
// the schedule, the platform) may name someone else.
func TestItem21_ForgedRequesterRefused(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	ns := cluster.CreateNamespace(t)
	grant(t, ns, "runs", []rbacv1.PolicyRule{
		{APIGroups: []string{"agentkube.io"}, Resources: []string{"agentruns"}, Verbs: []string{"create", "get"}},
	}, user("eve"), managerSubject())
	eveConfig, _ := cluster.User(t, "eve", "team-a")
	runs := func(cfg *rest.Config) func(*agentkubev1alpha1.Requester) (*agentkubev1alpha1.AgentRun, error) {
		clients, err := versioned.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return func(r *agentkubev1alpha1.Requester) (*agentkubev1alpha1.AgentRun, error) {
			return clients.AgentkubeV1alpha1().AgentRuns(ns).Create(ctx, &agentkubev1alpha1.AgentRun{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "run-"},
				Spec: agentkubev1alpha1.AgentRunSpec{
					AgentRef:  agentkubev1alpha1.LocalObjectReference{Name: "reviewer"},
					Input:     "review the payroll change",
					Requester: r,
				},
			}, metav1.CreateOptions{})
		}
	}
	asEve := runs(eveConfig)
	asManager := runs(impersonating(managerUser))
	refused := func(t *testing.T, r *agentkubev1alpha1.Requester) {
		t.Helper()
		run, err := asEve(r)
		if err == nil {
			t.Fatalf("created %s with requester %+v", run.Name, run.Spec.Requester)
		}
		if !strings.Contains(err.Error(), requesterDenied) || !strings.Contains(err.Error(), "spec.requester") {
			t.Fatalf("want the webhook's refusal naming spec.requester, got %v", err)
		}
	}
	isEve := func(t *testing.T, r *agentkubev1alpha1.Requester) {
		t.Helper()
		if r == nil || r.Username != "eve" || !slices.Contains(r.Groups, "team-a") || !slices.Contains(r.Groups, "system:authenticated") {
			t.Fatalf("requester = %+v, want eve with her groups", r)
		}
	}

	t.Run("someone else's name is refused", func(t *testing.T) {
		refused(t, &agentkubev1alpha1.Requester{Username: "alice"})
		refused(t, &agentkubev1alpha1.Requester{Username: "system:serviceaccount:" + systemNamespace + ":agentkube-manager"})
	})
	t.Run("her own name with groups she lacks is refused", func(t *testing.T) {
		refused(t, &agentkubev1alpha1.Requester{Username: "eve", Groups: []string{"system:masters"}})
	})
	t.Run("no requester becomes the caller", func(t *testing.T) {
		run, err := asEve(nil)
		if err != nil {
			t.Fatal(err)
		}
		isEve(t, run.Spec.Requester)
		stored, err := cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).Get(ctx, run.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		isEve(t, stored.Spec.Requester)
	})
	t.Run("her own name is completed with her identity", func(t *testing.T) {
		run, err := asEve(&agentkubev1alpha1.Requester{Username: "eve"})
		if err != nil {
			t.Fatal(err)
		}
		isEve(t, run.Spec.Requester)
	})
	t.Run("the manager may name the user it authenticated", func(t *testing.T) {
		onBehalf := &agentkubev1alpha1.Requester{Username: "alice", UID: "u-1", Groups: []string{"team-b", "system:authenticated"}}
		run, err := asManager(onBehalf)
		if err != nil {
			t.Fatal(err)
		}
		if r := run.Spec.Requester; r == nil || r.Username != "alice" || r.UID != "u-1" || !slices.Equal(r.Groups, onBehalf.Groups) {
			t.Fatalf("requester = %+v, want %+v as the manager set it", r, onBehalf)
		}
	})
	t.Run("the manager's scheduled runs keep no requester", func(t *testing.T) {
		run, err := asManager(nil)
		if err != nil {
			t.Fatal(err)
		}
		if run.Spec.Requester != nil {
			t.Fatalf("requester = %+v, want none on a run the manager created for itself", run.Spec.Requester)
		}
	})
}
