package tunnel_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// runExecutor stands in for the AgentRun controller and the agentlet
// (there is no node here): it completes every Platform-triggered run in ns
// with its input echoed as output.
func runExecutor(t *testing.T, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var runs agentkubev1alpha1.AgentRunList
			if err := cluster.Client.List(ctx, &runs, client.InNamespace(ns)); err != nil {
				continue
			}
			for i := range runs.Items {
				r := &runs.Items[i]
				if r.Spec.Trigger != agentkubev1alpha1.RunTriggerPlatform || r.Status.Phase != "" {
					continue
				}
				exit := int32(0)
				r.Status.Phase, r.Status.ExitCode, r.Status.OutputTail = agentkubev1alpha1.AgentRunPhaseSucceeded, &exit, "done: "+r.Spec.Input
				_ = cluster.Client.Status().Update(ctx, r)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestRequestsThroughTheTunnel(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"bot", "podless"} {
		if err := cluster.Client.Create(ctx, newAgent(ns, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cluster.Client.Create(ctx, newPod(ns, "bot", managedLabels)); err != nil {
		t.Fatal(err)
	}
	runExecutor(t, ns)
	p := startPlatform(t, nil)
	jwt, id, token := p.deployment("req@example.com")
	base := "/api/v1/deployments/" + id + "/agents/" + ns

	// Offline until the operator connects.
	if code := p.do("POST", base+"/bot/invoke", jwt, map[string]any{"input": "x"}, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("invoke before the operator connected: %d, want 503", code)
	}
	startOperator(t, p.url(), token)
	waitConverged(t, p, jwt, id)

	var res tunnel.InvokeAgentResult
	if code := p.do("POST", base+"/bot/invoke", jwt, map[string]any{"input": "hello", "timeout_seconds": 60}, &res); code != http.StatusOK {
		t.Fatalf("invoke: %d", code)
	}
	if res.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded || res.Output != "done: hello" || res.ExitCode == nil || *res.ExitCode != 0 {
		t.Fatalf("invoke result %+v", res)
	}
	var run agentkubev1alpha1.AgentRun
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: res.RunName}, &run); err != nil {
		t.Fatal(err)
	}
	if run.Spec.Trigger != agentkubev1alpha1.RunTriggerPlatform || run.Annotations[connect.AnnotationRequestedBy] != "req@example.com" || run.Spec.AgentRef.Name != "bot" {
		t.Fatalf("AgentRun %+v", run)
	}
	if code := p.do("POST", base+"/missing/invoke", jwt, map[string]any{}, nil); code != http.StatusNotFound {
		t.Fatalf("invoke of a missing agent: %d, want 404", code)
	}

	var pod tunnel.EnsurePodResult
	if code := p.do("POST", base+"/bot/ensure-pod", jwt, nil, &pod); code != http.StatusOK || pod.PodName != "bot" || pod.Phase != "Pending" {
		t.Fatalf("ensure-pod: %d %+v", code, pod)
	}
	// No pod and no Agent controller here: the connector nudges the Agent
	// and times out waiting.
	if code := p.do("POST", base+"/podless/ensure-pod", jwt, map[string]any{"timeout_seconds": 1}, nil); code != http.StatusGatewayTimeout {
		t.Fatalf("ensure-pod without a pod: %d, want 504", code)
	}
	var agent agentkubev1alpha1.Agent
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "podless"}, &agent); err != nil || agent.Annotations[connect.AnnotationEnsurePod] == "" {
		t.Fatalf("Agent not nudged: %v %v", agent.Annotations, err)
	}
}
