package aggregated

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	subresourcesv1alpha1 "github.com/exo-in-go/exo/pkg/apis/subresources/v1alpha1"
	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
)

// BenchmarkInvoke measures what aggregation adds to an invocation: the same invoke of a
// no-op Agent (waitSeconds 0, so the call ends once the AgentRun exists) through
// kube-apiserver and straight to the aggregated server, alternating so both see the same
// load. Same user (the admin's client certificate) on both paths, no client-side rate
// limit.
//
//	go test ./test/aggregated -run '^$' -bench . -benchtime 300x
func BenchmarkInvoke(b *testing.B) {
	ns := env.cluster.CreateNamespace(b)
	newAgent(b, ns, "noop", agentSpec{}) // Ready, no pod: its runs stay Pending, nothing executes them
	compareViaKubeAPIServer(b, func(ctx context.Context, client versioned.Interface) error {
		_, err := client.SubresourcesV1alpha1().Agents(ns).Invoke(ctx, "noop",
			&subresourcesv1alpha1.AgentInvocation{Spec: subresourcesv1alpha1.AgentInvocationSpec{Input: "noop"}}, metav1.CreateOptions{})
		return err
	})
}

// BenchmarkGetAgent is the same comparison for a read the server answers from its cache,
// so the difference is the aggregation hop alone, without the AgentRun write both paths
// share.
func BenchmarkGetAgent(b *testing.B) {
	ns := env.cluster.CreateNamespace(b)
	newAgent(b, ns, "noop", agentSpec{})
	compareViaKubeAPIServer(b, func(ctx context.Context, client versioned.Interface) error {
		_, err := client.SubresourcesV1alpha1().Agents(ns).Get(ctx, "noop", metav1.GetOptions{})
		return err
	})
}

// compareViaKubeAPIServer times op through kube-apiserver and straight to :8082, b.N times
// each, and reports p50/p99 of both and the difference.
func compareViaKubeAPIServer(b *testing.B, op func(context.Context, versioned.Interface) error) {
	viaKAS := rest.CopyConfig(env.cluster.Config)
	direct := rest.CopyConfig(env.cluster.Config)
	direct.Host = fmt.Sprintf("https://127.0.0.1:%d", env.port)
	direct.CAData, direct.CAFile, direct.ServerName = env.ca.CertPEM, "", ""
	paths := []struct {
		client  versioned.Interface
		samples []time.Duration
	}{{}, {}}
	for i, cfg := range []*rest.Config{viaKAS, direct} {
		cfg.QPS, cfg.Burst = -1, 0
		client, err := versioned.NewForConfig(cfg)
		if err != nil {
			b.Fatal(err)
		}
		paths[i].client = client
	}
	timed := func(client versioned.Interface) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if err := op(ctx, client); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for range 20 { // warm connections, caches and authorization decisions
		timed(paths[0].client)
		timed(paths[1].client)
	}

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		first, second := &paths[i%2], &paths[1-i%2]
		first.samples = append(first.samples, timed(first.client))
		second.samples = append(second.samples, timed(second.client))
	}
	b.StopTimer()

	kasP50, kasP99 := percentile(paths[0].samples, 50), percentile(paths[0].samples, 99)
	directP50, directP99 := percentile(paths[1].samples, 50), percentile(paths[1].samples, 99)
	b.ReportMetric(ms(kasP50), "kas-p50-ms")
	b.ReportMetric(ms(kasP99), "kas-p99-ms")
	b.ReportMetric(ms(directP50), "direct-p50-ms")
	b.ReportMetric(ms(directP99), "direct-p99-ms")
	b.ReportMetric(ms(kasP50-directP50), "added-p50-ms")
	b.ReportMetric(ms(kasP99-directP99), "added-p99-ms")
}

func percentile(samples []time.Duration, p int) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	sorted := append([]time.Duration(nil), samples...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	idx := (len(sorted)*p + 99) / 100
	return sorted[min(max(idx-1, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
