package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/tunnel"
	"github.com/exo-in-go/exo/test/poll"
)

// Item 4: any tenant's operator could make exo-app's memory grow without
// bound by pushing large objects (300 objects of ~1 MiB added 366 MB) that
// stayed in memory after it disconnected. Now objects are trimmed on
// receipt, a deployment's view has a byte budget (EXO_TUNNEL_MAX_VIEW_BYTES,
// default 16 MiB), growth past it is refused and reported to the operator
// and on the dashboard, and the view is freed once the deployment is offline.
func TestItem04_OperatorCannotExhaustViewMemory(t *testing.T) {
	const (
		budget  = 16 << 20 // the default
		objects = 300      // ~285 MiB on the wire
	)
	for _, backend := range platformtest.Backends {
		t.Run(backend, func(t *testing.T) {
			a := startApp(t, backend, map[string]string{
				// Short liveness windows, so the view is evicted within the test.
				"EXO_TUNNEL_HEARTBEAT_INTERVAL": "500ms",
				"EXO_TUNNEL_DEGRADED_AFTER":     "1s",
				"EXO_TUNNEL_OFFLINE_AFTER":      "2s",
			})
			u := a.signup(t, "owner@item04.test")
			depID, tok := a.deployment(t, u, "prod")
			op, err := dialOperator(t, a, tok)
			if err != nil {
				t.Fatal(err)
			}
			if err := op.snapshot(agentObject("seed", 0)); err != nil {
				t.Fatal(err)
			}
			poll.UntilTrue(t, "the snapshot", 10*time.Second, func() bool { return a.cluster(t, u, depID).Synced })
			rss0 := rss(t, a)

			// Attack: upsert ~1 MiB objects, each filling every field the
			// dashboard keeps as far as the caps allow, one per frame.
			peak := rss0
			start := time.Now()
			for i := range objects {
				if err := op.delta(agentObject(fmt.Sprintf("big-%03d", i), 880<<10)); err != nil {
					t.Fatalf("delta %d: %v (connection: %v)", i, err, op.err)
				}
				if i%25 == 0 {
					peak = max(peak, rss(t, a))
				}
			}
			var v clusterView
			poll.UntilTrue(t, "the last delta to be processed", 30*time.Second, func() bool {
				v = a.cluster(t, u, depID)
				peak = max(peak, rss(t, a))
				return v.OverBudget && len(v.Objects) > 0 && v.Detail != ""
			})
			poll.UntilTrue(t, "the refusal to reach the operator", 10*time.Second, func() bool { return len(op.received(typeViewOverBudget)) == 1 })
			peak = max(peak, rss(t, a))
			t.Logf("exo-app RSS: %d MiB before, peak %d MiB while one operator pushed %d objects of ~1 MiB (%d MiB) in %s; view %d bytes of %d, %d objects kept",
				rss0>>20, peak>>20, objects, objects*970>>10, time.Since(start).Round(time.Millisecond), v.ViewBytes, budget, len(v.Objects))

			if v.ViewBytes > budget {
				t.Fatalf("view holds %d bytes, over the %d byte budget", v.ViewBytes, budget)
			}
			if !strings.Contains(v.Detail, "view over budget") {
				t.Fatalf("detail %q does not say the view is over budget", v.Detail)
			}
			var refusal struct {
				BudgetBytes int64  `json:"budget_bytes"`
				Message     string `json:"message"`
			}
			if err := op.received(typeViewOverBudget)[0].Unmarshal(&refusal); err != nil || refusal.BudgetBytes != budget || !strings.Contains(refusal.Message, "view over budget") {
				t.Fatalf("refusal sent to the operator: %+v (%v)", refusal, err)
			}
			if grew := peak - rss0; grew > 128<<20 {
				t.Fatalf("exo-app grew by %d MiB, want under 128 MiB", grew>>20)
			}
			for _, o := range v.Objects {
				if len(o.Object) > 128<<10 {
					t.Fatalf("object %s stored with %d bytes: not trimmed", o.Name, len(o.Object))
				}
			}
			// The connection stays usable: heartbeats and invocations go on.
			select {
			case <-op.done:
				t.Fatalf("the operator was disconnected: %v", op.err)
			default:
			}

			// A frame over the read limit closes the connection with 1009.
			huge, _ := json.Marshal(agentObject("huge", 2<<20))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = op.conn.Send(ctx, tunnel.TypeDelta, "", json.RawMessage(`{"generation":1,"changes":[{"op":"upsert","object":`+string(huge)+`}]}`))
			cancel()
			if code, ok := op.closed(10 * time.Second); !ok || code != tunnel.CloseMessageTooBig {
				t.Fatalf("a 2 MiB frame: closed %v with %d, want 1009", ok, code)
			}

			// Once the deployment is offline its view is freed.
			poll.UntilTrue(t, "the view to be freed after the offline window", 15*time.Second, func() bool {
				v = a.cluster(t, u, depID)
				return v.Status == "offline" && len(v.Objects) == 0 && v.ViewBytes == 0
			})
			t.Logf("exo-app RSS after the view was freed: %d MiB", rss(t, a)>>20)

			// Nothing else broke: a well-behaved snapshot is shown whole again.
			op2, err := dialOperator(t, a, tok)
			if err != nil {
				t.Fatal(err)
			}
			if err := op2.snapshot(agentObject("hello", 0)); err != nil {
				t.Fatal(err)
			}
			poll.UntilTrue(t, "the new snapshot", 10*time.Second, func() bool {
				v = a.cluster(t, u, depID)
				return v.Synced && !v.OverBudget && len(v.Objects) == 1 && v.Objects[0].Name == "hello"
			})
			var agents struct {
				Items []struct{ Name, Runtime string }
			}
			a.must(t, http.StatusOK, "GET", "/api/v1/deployments/"+depID+"/agents", u.token, nil, &agents)
			if len(agents.Items) != 1 || agents.Items[0].Runtime != "Custom" {
				t.Fatalf("agents: %+v", agents)
			}
		})
	}
}

// typeViewOverBudget is the refusal frame (tunnel.TypeViewOverBudget),
// spelled out so the test also builds against code without it.
const typeViewOverBudget = "view_over_budget"

// agentObject is an Agent of about pad bytes, most of it in fields the
// dashboard never shows, and every shown field filled to its cap.
func agentObject(name string, pad int) tunnel.Object {
	long := strings.Repeat("m", 1100) // just over the cap of what is kept
	conds := make([]map[string]any, 20)
	for i := range conds {
		conds[i] = map[string]any{"type": fmt.Sprintf("C%d-%s", i, long), "status": "True", "reason": long, "message": long, "lastTransitionTime": long}
	}
	obj := map[string]any{
		"apiVersion": "agentkube.io/v1alpha1", "kind": "Agent",
		"metadata": map[string]any{"name": name, "namespace": "default", "annotations": map[string]string{"junk": strings.Repeat("a", pad)}},
		"spec":     map[string]any{"runtime": "Custom", "image": long, "env": []map[string]string{{"name": "SECRET", "value": "hunter2"}}},
		"status":   map[string]any{"phase": "Ready", "ready": "1/1", "podName": name, "conditions": conds},
	}
	b, _ := json.Marshal(obj)
	return tunnel.Object{Kind: "Agent", Namespace: "default", Name: name, UID: "uid-" + name, ResourceVersion: "1", Object: b}
}

func rss(t testing.TB, a *app) int64 {
	t.Helper()
	n, err := a.child.RSS()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
