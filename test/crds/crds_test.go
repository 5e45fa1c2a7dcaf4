// Package crds tests the agentkube.io CRDs against a real kube-apiserver: that they are
// served, print and explain well, refuse bad specs with messages that name the field,
// and work through the generated clientset.
package crds

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/test/framework"
)

var cluster *framework.Cluster

func TestMain(m *testing.M) {
	os.Exit(framework.RunMain(m, framework.Options{}, &cluster))
}

func TestCRDsEstablished(t *testing.T) {
	ctx := context.Background()
	want := []string{"agents", "agentruns", "tools", "mcps", "llmgateways", "claws"}
	for _, plural := range want {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := cluster.Client.Get(ctx, client.ObjectKey{Name: plural + ".agentkube.io"}, &crd); err != nil {
			t.Fatalf("CRD %s: %v", plural, err)
		}
		established := false
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		if !established {
			t.Errorf("CRD %s is not Established: %+v", plural, crd.Status.Conditions)
		}
		if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
			t.Errorf("CRD %s scope = %s, want Namespaced", plural, crd.Spec.Scope)
		}
		if !contains(crd.Spec.Names.Categories, "agentkube") {
			t.Errorf("CRD %s categories = %v, want agentkube", plural, crd.Spec.Names.Categories)
		}
		if crd.Spec.Versions[0].Subresources == nil || crd.Spec.Versions[0].Subresources.Status == nil {
			t.Errorf("CRD %s has no status subresource", plural)
		}
	}
}

func TestKubectlPrintsColumnsAndShortNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := cluster.CreateNamespace(t)
	agent := &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: "reviewer", Namespace: ns},
		Spec:       agentkubev1alpha1.AgentSpec{Runtime: agentkubev1alpha1.RuntimeClaudeCode},
	}
	if err := cluster.Client.Create(ctx, agent); err != nil {
		t.Fatal(err)
	}
	agent.Status.Ready = "1/1"
	agent.Status.Phase = agentkubev1alpha1.AgentPhaseReady
	if err := cluster.Client.Status().Update(ctx, agent); err != nil {
		t.Fatal(err)
	}

	for _, resource := range []string{"agents", "ag"} {
		out, _, err := cluster.Kubectl(ctx, "", "get", resource, "-n", ns)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME READY STATUS RUNTIME AGE" {
			t.Fatalf("kubectl get %s header = %q", resource, lines[0])
		}
		if got := strings.Fields(lines[1]); len(got) != 5 || got[0] != "reviewer" || got[1] != "1/1" || got[2] != "Ready" || got[3] != "ClaudeCode" {
			t.Fatalf("kubectl get %s row = %q", resource, lines[1])
		}
	}

	run := &agentkubev1alpha1.AgentRun{
		ObjectMeta: metav1.ObjectMeta{Name: "reviewer-1", Namespace: ns},
		Spec:       agentkubev1alpha1.AgentRunSpec{AgentRef: agentkubev1alpha1.LocalObjectReference{Name: "reviewer"}},
	}
	if err := cluster.Client.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	out, _, err := cluster.Kubectl(ctx, "", "get", "ar", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	if header := strings.Fields(strings.Split(out, "\n")[0]); strings.Join(header, " ") != "NAME AGENT PHASE EXIT AGE" {
		t.Fatalf("kubectl get ar header = %q", out)
	}
	if run.Spec.Trigger != agentkubev1alpha1.RunTriggerManual || run.Spec.Timeout == nil || run.Spec.Timeout.Duration != 30*time.Minute {
		t.Fatalf("AgentRun defaults not applied: trigger=%q timeout=%v", run.Spec.Trigger, run.Spec.Timeout)
	}

	tool := &agentkubev1alpha1.Tool{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec:       agentkubev1alpha1.ToolSpec{Type: agentkubev1alpha1.ToolTypePostgres},
	}
	if err := cluster.Client.Create(ctx, tool); err != nil {
		t.Fatal(err)
	}
	if tool.Spec.IdleTimeout == nil || tool.Spec.IdleTimeout.Duration != 15*time.Minute {
		t.Fatalf("Tool idleTimeout default = %v, want 15m", tool.Spec.IdleTimeout)
	}
	out, _, err = cluster.Kubectl(ctx, "", "get", "tl", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	if header := strings.Fields(strings.Split(out, "\n")[0]); strings.Join(header, " ") != "NAME TYPE READY AGE" {
		t.Fatalf("kubectl get tl header = %q", out)
	}

	// The category lists every kind at once.
	out, _, err = cluster.Kubectl(ctx, "", "get", "agentkube", "-n", ns, "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"agent.agentkube.io/reviewer", "agentrun.agentkube.io/reviewer-1", "tool.agentkube.io/db"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get agentkube misses %s:\n%s", want, out)
		}
	}
}

func TestKubectlExplain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := cluster.Kubectl(ctx, "", "explain", "agent.spec.runtime")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"runtime is the coding-agent CLI the Agent runs", "ClaudeCode", "Custom"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain agent.spec.runtime lacks %q:\n%s", want, out)
		}
	}
	out, _, err = cluster.Kubectl(ctx, "", "explain", "tool.spec.idleTimeout")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "idleTimeout tears the bastion pod down") {
		t.Errorf("kubectl explain tool.spec.idleTimeout:\n%s", out)
	}
}

// TestInvalidSpecsRefused checks that the schema refuses each bad spec with a message
// that names the offending field, through kubectl as a user would see it.
func TestInvalidSpecsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := cluster.CreateNamespace(t)
	cases := []struct {
		name     string
		manifest string
		want     []string
	}{
		{
			name:     "unknown runtime",
			manifest: agentYAML(ns, "runtime: Clippy"),
			want:     []string{"spec.runtime", `Unsupported value: "Clippy"`},
		},
		{
			name:     "custom without image",
			manifest: agentYAML(ns, "runtime: Custom"),
			want:     []string{"spec.image", "image is required when runtime is Custom"},
		},
		{
			name:     "unparsable schedule",
			manifest: agentYAML(ns, "runtime: Codex\n  schedule: every tuesday"),
			want:     []string{"spec.schedule", "five-field cron expression"},
		},
		{
			name:     "goal with both sources",
			manifest: agentYAML(ns, "runtime: Codex\n  goal:\n    inline: x\n    configMapKeyRef: {name: g, key: k}"),
			want:     []string{"spec.goal", "exactly one of goal.inline and goal.configMapKeyRef"},
		},
		{
			name:     "model base URL that is not http(s)",
			manifest: agentYAML(ns, "runtime: Gemini\n  model: {name: m, baseURL: 'llm-gateway:8080'}"),
			want:     []string{"spec.model.baseURL", "baseURL must be an http or https URL without query or fragment"},
		},
		{
			name:     "tool of unknown type",
			manifest: toolYAML(ns, "type: teleport"),
			want:     []string{"spec.type", `Unsupported value: "teleport"`},
		},
		{
			name:     "negative idleTimeout",
			manifest: toolYAML(ns, "type: ssh\n  idleTimeout: -5m"),
			want:     []string{"spec.idleTimeout", "idleTimeout must be a positive duration"},
		},
		{
			name:     "custom tool without image",
			manifest: toolYAML(ns, "type: custom"),
			want:     []string{"spec.image", "image is required when type is custom"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := cluster.KubectlWithInput(ctx, "", strings.NewReader(tc.manifest), "create", "-f", "-")
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.manifest)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
		})
	}

	// Valid forms of the same fields are accepted.
	for _, manifest := range []string{
		agentYAML(ns, "runtime: Custom\n  image: registry.local/bot:1"),
		agentYAML(ns, "runtime: Codex\n  schedule: '*/15 * * * *'"),
		agentYAML(ns, "runtime: Codex\n  schedule: '@every 90m'"),
		agentYAML(ns, "runtime: Codex\n  schedule: '0 9 * * MON-FRI'"),
		agentYAML(ns, "runtime: Gemini\n  model: {name: m, baseURL: 'http://llm-gateway.ai.svc:8080'}"),
		toolYAML(ns, "type: ssh\n  idleTimeout: 1h30m"),
	} {
		if _, _, err := cluster.KubectlWithInput(ctx, "", strings.NewReader(manifest), "create", "-f", "-"); err != nil {
			t.Errorf("refused a valid manifest: %v\n%s", err, manifest)
		}
	}
}

func TestGeneratedClientsetCreatesListsWatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := cluster.CreateNamespace(t)
	agents := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns)

	w, err := agents.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	created, err := agents.Create(ctx, &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: "watched"},
		Spec:       agentkubev1alpha1.AgentSpec{Runtime: agentkubev1alpha1.RuntimeGoose, Paused: true},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.Mode != agentkubev1alpha1.AgentModeSupervised || created.Spec.RunHistoryLimit == nil || *created.Spec.RunHistoryLimit != 10 {
		t.Fatalf("defaults not applied: mode=%q runHistoryLimit=%v", created.Spec.Mode, created.Spec.RunHistoryLimit)
	}
	select {
	case ev := <-w.ResultChan():
		a, ok := ev.Object.(*agentkubev1alpha1.Agent)
		if ev.Type != watch.Added || !ok || a.Name != "watched" {
			t.Fatalf("watch event = %s %T", ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Fatal("no watch event for the created Agent")
	}
	list, err := agents.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "watched" {
		t.Fatalf("list = %+v", list.Items)
	}
}

func agentYAML(ns, spec string) string {
	return "apiVersion: agentkube.io/v1alpha1\nkind: Agent\nmetadata:\n  generateName: a-\n  namespace: " + ns + "\nspec:\n  " + spec + "\n"
}

func toolYAML(ns, spec string) string {
	return "apiVersion: agentkube.io/v1alpha1\nkind: Tool\nmetadata:\n  generateName: t-\n  namespace: " + ns + "\nspec:\n  " + spec + "\n"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
