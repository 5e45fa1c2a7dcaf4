package connect

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

func TestBackoffFullJitterWithinExponentialCeiling(t *testing.T) {
	b := backoff{initial: 100 * time.Millisecond, max: 2 * time.Second}
	for attempt := range 40 {
		ceiling := min(b.max, b.initial<<min(attempt, 31))
		if d := b.next(); d < 0 || d > ceiling {
			t.Fatalf("attempt %d: wait %s outside [0, %s]", attempt, d, ceiling)
		}
	}
	b.reset()
	if d := b.next(); d > b.initial {
		t.Fatalf("after reset: %s > %s", d, b.initial)
	}
}

func TestOptionsFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	o, err := OptionsFromEnv(env(map[string]string{"HOSTNAME": "mgr-0", "POD_NAMESPACE": "agentkube-system"}))
	if err != nil || o.Managed || o.ClusterID != "agentkube-system/mgr-0" {
		t.Fatalf("unmanaged defaults: %+v %v", o, err)
	}
	if _, err := OptionsFromEnv(env(map[string]string{"AGENTKUBE_MANAGED": "true"})); err == nil || !strings.Contains(err.Error(), "AGENTKUBE_AUTH_TOKEN") {
		t.Fatalf("managed without a token: %v", err)
	}
	if _, err := OptionsFromEnv(env(map[string]string{"AGENTKUBE_MANAGED": "yes please"})); err == nil {
		t.Fatal("bad AGENTKUBE_MANAGED accepted")
	}
	if _, err := OptionsFromEnv(env(map[string]string{"AGENTKUBE_MANAGED": "true", "AGENTKUBE_AUTH_TOKEN": "t", "AGENTKUBE_BASE_URL": "ftp://x"})); err == nil {
		t.Fatal("ftp base URL accepted")
	}
	if _, err := OptionsFromEnv(env(map[string]string{"AGENTKUBE_MANAGED": "true", "AGENTKUBE_AUTH_TOKEN": "t"})); err == nil || !strings.Contains(err.Error(), "--base-url") {
		t.Fatalf("managed mode without a base URL: %v, want an error naming --base-url", err)
	}
	o, err = OptionsFromEnv(env(map[string]string{"AGENTKUBE_MANAGED": "true", "AGENTKUBE_AUTH_TOKEN": "t", "AGENTKUBE_BASE_URL": "https://exo.example.com", "AGENTKUBE_CLUSTER_ID": "prod", "AGENTKUBE_HEARTBEAT_INTERVAL": "5s"}))
	if err != nil || !o.Managed || o.ClusterID != "prod" || o.HeartbeatInterval != 5*time.Second {
		t.Fatalf("managed: %+v %v", o, err)
	}
	if u, _ := tunnel.ConnectURL(o.BaseURL); u != "wss://exo.example.com/api/agentkube/connect" {
		t.Fatalf("tunnel URL %s", u)
	}
}

func TestChunksStayUnderTheLimit(t *testing.T) {
	objs := make([]tunnel.Object, 100)
	for i := range objs {
		objs[i] = tunnel.Object{Kind: "Agent", Name: "a", Object: []byte(`{"x":"` + strings.Repeat("y", i*10) + `"}`)}
	}
	objs[50].Object = []byte(`"` + strings.Repeat("z", 10000) + `"`) // alone over the limit
	const limit = 2000
	ranges := chunks(len(objs), func(i int) *tunnel.Object { return &objs[i] }, limit)
	next := 0
	for _, r := range ranges {
		if r[0] != next || r[1] <= r[0] {
			t.Fatalf("ranges %v not contiguous", ranges)
		}
		next = r[1]
	}
	if next != len(objs) {
		t.Fatalf("ranges cover %d of %d objects", next, len(objs))
	}
	if objs[50].Object != nil {
		t.Fatal("an oversized object kept its body")
	}
	if r := chunks(0, nil, limit); len(r) != 1 || r[0] != [2]int{0, 0} {
		t.Fatalf("no objects: %v, want one empty (final) chunk", r)
	}
}

// The operator sends only what the dashboard shows (tunnel.Trim): never a
// literal env value, a run's input, args or output, or annotations.
func TestEncodeSendsOnlyWhatTheDashboardShows(t *testing.T) {
	agent := &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns", ResourceVersion: "7",
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "secret-annotation"}},
		Spec:   agentkubev1alpha1.AgentSpec{Runtime: agentkubev1alpha1.RuntimeCustom, Env: []corev1.EnvVar{{Name: "K", Value: "secret-env"}}},
		Status: agentkubev1alpha1.AgentStatus{PodName: "a"},
	}
	run := &agentkubev1alpha1.AgentRun{
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"},
		Spec: agentkubev1alpha1.AgentRunSpec{AgentRef: agentkubev1alpha1.LocalObjectReference{Name: "a"},
			Input: "secret-input", Args: []string{"secret-arg"}, Trigger: agentkubev1alpha1.RunTriggerManual},
		Status: agentkubev1alpha1.AgentRunStatus{OutputTail: "secret-output"},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "runtime", Env: []corev1.EnvVar{{Name: "K", Value: "secret-pod-env"}}}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, c := range []struct {
		kind string
		obj  client.Object
		want string
	}{
		{"Agent", agent, `"runtime":"Custom"`},
		{"AgentRun", run, `"agentRef":{"name":"a"}`},
		{"Pod", pod, `"phase":"Running"`},
	} {
		o, err := encode(c.kind, c.obj)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(o.Object), "secret") {
			t.Fatalf("%s sent with a secret: %s", c.kind, o.Object)
		}
		if !strings.Contains(string(o.Object), c.want) || o.ResourceVersion != c.obj.GetResourceVersion() {
			t.Fatalf("%s lost what the dashboard shows (%s): %s", c.kind, c.want, o.Object)
		}
	}
}
