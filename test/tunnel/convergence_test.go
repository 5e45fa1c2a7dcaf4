package tunnel_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/test/poll"
)

var managedLabels = map[string]string{"app.kubernetes.io/managed-by": "agentkube-manager"}

func newAgent(ns, name string) *agentkubev1alpha1.Agent {
	return &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       agentkubev1alpha1.AgentSpec{Runtime: agentkubev1alpha1.RuntimeClaudeCode},
	}
}

func newPod(ns, name string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

// clusterState lists what the view must hold, straight from kube-apiserver:
// "Kind/namespace/name@resourceVersion" for every agentkube object and
// every managed pod.
func clusterState(ctx context.Context) ([]string, error) {
	var out []string
	lists := map[string]client.ObjectList{
		"Agent": &agentkubev1alpha1.AgentList{}, "AgentRun": &agentkubev1alpha1.AgentRunList{},
		"Tool": &agentkubev1alpha1.ToolList{}, "MCP": &agentkubev1alpha1.MCPList{},
		"LLMGateway": &agentkubev1alpha1.LLMGatewayList{}, "Claw": &agentkubev1alpha1.ClawList{},
		"Pod": &corev1.PodList{},
	}
	for kind, l := range lists {
		var opts []client.ListOption
		if kind == "Pod" {
			opts = append(opts, client.MatchingLabels(managedLabels))
		}
		if err := cluster.Client.List(ctx, l, opts...); err != nil {
			return nil, err
		}
		items, _ := meta.ExtractList(l)
		for _, it := range items {
			o := it.(client.Object)
			out = append(out, fmt.Sprintf("%s/%s/%s@%s", kind, o.GetNamespace(), o.GetName(), o.GetResourceVersion()))
		}
	}
	slices.Sort(out)
	return out, nil
}

func platformState(p *platform, jwt, id string) ([]string, bool) {
	var v agentkube.ClusterView
	if p.do("GET", "/api/v1/deployments/"+id+"/cluster", jwt, nil, &v) != http.StatusOK || !v.Synced {
		return nil, false
	}
	out := make([]string, 0, len(v.Objects))
	for _, o := range v.Objects {
		out = append(out, fmt.Sprintf("%s/%s/%s@%s", o.Kind, o.Namespace, o.Name, o.ResourceVersion))
	}
	slices.Sort(out)
	return out, true
}

func waitConverged(t *testing.T, p *platform, jwt, id string) {
	t.Helper()
	poll.Until(t, 90*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		want, err := clusterState(ctx)
		if err != nil {
			return err
		}
		got, ok := platformState(p, jwt, id)
		if !ok {
			return fmt.Errorf("platform view not synced")
		}
		if !slices.Equal(got, want) {
			missing, stale := diff(want, got), diff(got, want)
			return fmt.Errorf("view differs from the cluster: %d missing %v, %d stale %v", len(missing), head(missing), len(stale), head(stale))
		}
		return nil
	})
}

func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// churn changes agentkube objects and pods as fast as kube-apiserver
// takes them (about 100 per second here) until stop is closed.
func churn(t *testing.T, ns string, stop <-chan struct{}) (ops int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := cluster.Client
	var agents, pods []string
	rng := rand.New(rand.NewPCG(1, 2))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return n
		case <-tick.C:
		}
		var err error
		switch op := rng.IntN(8); {
		case op == 0 || len(agents) < 3:
			name := fmt.Sprintf("a-%d", n)
			err = c.Create(ctx, newAgent(ns, name))
			agents = append(agents, name)
		case op == 1:
			i := rng.IntN(len(agents))
			err = client.IgnoreNotFound(c.Delete(ctx, newAgent(ns, agents[i])))
			agents = slices.Delete(agents, i, i+1)
		case op == 2 || op == 3:
			a := newAgent(ns, agents[rng.IntN(len(agents))])
			patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{"churn":"%d"}}}`, n))
			err = client.IgnoreNotFound(c.Patch(ctx, a, client.RawPatch("application/merge-patch+json", patch)))
		case op == 4:
			name := fmt.Sprintf("p-%d", n)
			err = c.Create(ctx, newPod(ns, name, managedLabels))
			pods = append(pods, name)
		case op == 5 && len(pods) > 0:
			i := rng.IntN(len(pods))
			err = client.IgnoreNotFound(c.Delete(ctx, newPod(ns, pods[i], nil), client.GracePeriodSeconds(0)))
			pods = slices.Delete(pods, i, i+1)
		case op == 6:
			// Not managed: must never appear in the view.
			err = c.Create(ctx, newPod(ns, fmt.Sprintf("other-%d", n), map[string]string{"app": "other"}))
		default:
			err = c.Create(ctx, &agentkubev1alpha1.AgentRun{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "run-"},
				Spec:       agentkubev1alpha1.AgentRunSpec{AgentRef: agentkubev1alpha1.LocalObjectReference{Name: agents[0]}},
			})
		}
		if err != nil {
			t.Errorf("churn op %d: %v", n, err)
			return n
		}
	}
}

// While the cluster changes continuously, exo-app is killed and restarted
// twice; after the operator reconnects, the platform's view equals the
// cluster exactly: nothing missing (created while the platform was down),
// nothing stale (deleted while it was down).
func TestConvergenceAcrossPlatformRestarts(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 5 {
		if err := cluster.Client.Create(ctx, newAgent(ns, fmt.Sprintf("seed-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	p := startPlatform(t, nil)
	jwt, id, token := p.deployment("ops@example.com")
	startOperator(t, p.url(), token)
	waitConverged(t, p, jwt, id)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ops int
	wg.Add(1)
	go func() { defer wg.Done(); ops = churn(t, ns, stop) }()

	for range 2 {
		time.Sleep(time.Second) // let changes flow as deltas
		p.kill()
		time.Sleep(500 * time.Millisecond) // changes while the platform is down
		p.restart()
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d changes during the test", ops)
	waitConverged(t, p, jwt, id)

	// The reconnects were audited.
	var audit struct {
		Items []struct {
			Action   string `json:"action"`
			TargetID string `json:"target_id"`
		} `json:"items"`
	}
	p.do("GET", "/api/v1/audit", jwt, nil, &audit)
	n := 0
	for _, a := range audit.Items {
		if a.Action == agentkube.AuditDeploymentReconnected && a.TargetID == id {
			n++
		}
	}
	if n < 2 {
		t.Fatalf("%d DeploymentReconnected events after two restarts, want ≥ 2", n)
	}
}
