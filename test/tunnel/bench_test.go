package tunnel_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/test/poll"
)

// BenchmarkDeltaLatency measures how long a change takes from the write to
// kube-apiserver (the informer event follows within milliseconds) to its
// visibility in the dashboard API, with the connector's default coalescing
// delay (100 ms). Each iteration patches an Agent and polls
// GET /api/v1/deployments/{id}/cluster?kind=Agent every millisecond until the
// new resourceVersion shows.
func BenchmarkDeltaLatency(b *testing.B) {
	ns := cluster.CreateNamespace(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := cluster.Client.Create(ctx, newAgent(ns, "probe")); err != nil {
		b.Fatal(err)
	}
	p := startPlatform(b, nil)
	jwt, id, token := p.deployment(fmt.Sprintf("bench-%d@example.com", time.Now().UnixNano()))
	startOperator(b, p.url(), token, func(o *connect.Options) { o.DeltaDelay = 0 }) // the default
	visible := func(rv string) bool {
		var v agentkube.ClusterView
		if p.do("GET", "/api/v1/deployments/"+id+"/cluster?kind=Agent", jwt, nil, &v) != http.StatusOK {
			return false
		}
		for _, o := range v.Objects {
			if o.Namespace == ns && o.Name == "probe" {
				return o.ResourceVersion == rv
			}
		}
		return false
	}
	poll.Until(b, time.Minute, func() error {
		if s, _ := platformState(p, jwt, id); len(s) == 0 {
			return fmt.Errorf("view not synced yet")
		}
		return nil
	})

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		a := newAgent(ns, "probe")
		patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"metadata":{"annotations":{"i":"%d"}}}`, i))
		start := time.Now()
		if err := cluster.Client.Patch(ctx, a, patch); err != nil {
			b.Fatal(err)
		}
		for !visible(a.ResourceVersion) {
			if time.Since(start) > time.Minute {
				b.Fatal("change never became visible")
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		// Space changes past the coalescing window so each one is measured
		// on its own; within a burst a change waits up to DeltaDelay more.
		time.Sleep(150 * time.Millisecond)
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
