package manager

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
)

var (
	benchAgents  = flag.Int("bench-agents", 500, "Agents BenchmarkAgentsToPods creates per iteration")
	benchQPS     = flag.Float64("bench-kube-api-qps", 1000, "the manager's --kube-api-qps in BenchmarkAgentsToPods")
	benchBurst   = flag.Int("bench-kube-api-burst", 2000, "the manager's --kube-api-burst in BenchmarkAgentsToPods")
	benchWorkers = flag.Int("bench-workers", 16, "the manager's --max-concurrent-reconciles in BenchmarkAgentsToPods")
)

// BenchmarkAgentsToPods creates Agents and measures until every one has its
// pod, reporting Agents per second. Each Agent costs the manager a token
// Secret create, a pod create and a status patch, besides the watch traffic.
func BenchmarkAgentsToPods(b *testing.B) {
	startManager(b, cluster.Config, func(o *Options) {
		o.KubeAPIQPS, o.KubeAPIBurst = float32(*benchQPS), *benchBurst
		o.MaxConcurrentReconciles = *benchWorkers
	})
	// The creating client must not be the bottleneck.
	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS, cfg.Burst = 5000, 5000
	creator := versioned.NewForConfigOrDie(cfg)
	ctx := context.Background()
	n := *benchAgents

	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns := cluster.CreateNamespace(b)
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, 32)
		for j := 0; j < n; j++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(j int) {
				defer wg.Done()
				defer func() { <-sem }()
				a := &agentkubev1alpha1.Agent{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("agent-%04d", j), Namespace: ns},
					Spec:       agentkubev1alpha1.AgentSpec{Runtime: agentkubev1alpha1.RuntimeClaudeCode},
				}
				if _, err := creator.AgentkubeV1alpha1().Agents(ns).Create(ctx, a, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}(j)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		created := time.Since(start)
		for {
			pods, err := cluster.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
			if err != nil {
				b.Fatal(err)
			}
			if len(pods.Items) >= n {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		total += time.Since(start)
		b.Logf("created %d Agents in %s; all pods after %s", n, created.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "agents/s")
	logReconciles(b)
}

// logReconciles shows how many reconciles the Agents took, by result: more
// than two per Agent, or many requeues, would point at the controller rather
// than at the API server.
func logReconciles(b *testing.B) {
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "agentkube_reconciles_total" {
			continue
		}
		for _, m := range mf.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			b.Logf("agentkube_reconciles_total{%s} %v", strings.Join(labels, ","), m.GetCounter().GetValue())
		}
	}
}
