package localup

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	subresourcesv1alpha1 "github.com/exo-in-go/exo/pkg/apis/subresources/v1alpha1"
	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
)

// BenchmarkInvokeTunnelVersusDirect compares one invocation of the same
// agent (a real AgentRun, run by the real agentlet on localnode) made two
// ways in the same run: through the platform (dashboard API → operator
// tunnel → AgentRun) and directly (kube-apiserver → aggregated API →
// AgentRun), as `kubectl agent invoke --wait` does. The ratio is the
// tunnel's cost; the absolute times include the run itself.
//
//	go test ./test/localup -run '^$' -bench InvokeTunnelVersusDirect -benchtime 20x
func BenchmarkInvokeTunnelVersusDirect(b *testing.B) {
	u := startLocalUp(b) // its welcome comes once the agent is Ready
	d := signIn(b, u)
	cfg, err := clientcmd.BuildConfigFromFlags("", match(b, u.welcome, `kubeconfig\s+(\S+)`))
	if err != nil {
		b.Fatal(err)
	}
	cs, err := versioned.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	direct := func(tb testing.TB) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		inv, err := cs.SubresourcesV1alpha1().Agents("default").Invoke(ctx, "hello", &subresourcesv1alpha1.AgentInvocation{
			Spec: subresourcesv1alpha1.AgentInvocationSpec{Input: "bench", WaitSeconds: 50},
		}, metav1.CreateOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		if inv.Status.Phase != "Succeeded" || !strings.Contains(inv.Status.OutputTail, "bench") {
			tb.Fatalf("direct invocation: %+v", inv.Status)
		}
	}
	tunnel := func(tb testing.TB) {
		res := d.invoke(tb, "bench")
		if res["phase"] != "Succeeded" || !strings.Contains(res["output"].(string), "bench") {
			tb.Fatalf("invocation through the tunnel: %v", res)
		}
	}
	// Warm both paths (connections, caches) before measuring.
	direct(b)
	tunnel(b)

	// Interleaved so that load on the shared machine hits both alike.
	var tDirect, tTunnel []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		direct(b)
		tDirect = append(tDirect, time.Since(start))
		start = time.Now()
		tunnel(b)
		tTunnel = append(tTunnel, time.Since(start))
	}
	b.StopTimer()
	pd, pt := median(tDirect), median(tTunnel)
	b.ReportMetric(float64(pd.Microseconds())/1000, "direct-p50-ms")
	b.ReportMetric(float64(pt.Microseconds())/1000, "tunnel-p50-ms")
	b.ReportMetric(float64(pt)/float64(pd), "tunnel/direct")
	b.ReportMetric(float64(pt-pd)/float64(time.Millisecond), "tunnel-overhead-ms")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
