package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
	"github.com/exo-in-go/exo/test/poll"
)

// The real node's figures (issue 14), each the median of b.N samples in one run:
//
//	go test ./test/cluster -run '^$' -bench . -benchtime 10x
//
// BenchmarkHelmInstall: `helm install` of the runtime plane → every Deployment
// Available. BenchmarkAgent: Agent created → pod Ready, Agent created → first invoke
// answered, and a no-op invoke through kube-apiserver against a GET of the Agent through
// it (the baseline of the same run: the ratio is what the aggregated API and the
// agentlet add to one round trip).

// p50 is the median of samples.
func p50(samples []time.Duration) time.Duration {
	s := append([]time.Duration(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func report(b *testing.B, name string, samples []time.Duration) {
	b.ReportMetric(float64(p50(samples).Microseconds())/1000, name+"-p50-ms")
}

// installRuntimePlaneUnmanaged installs the runtime plane with the documented default
// command and returns how long it took until every Deployment was Available.
func installRuntimePlaneUnmanaged(b testing.TB) time.Duration {
	start := time.Now()
	sh(b, "", "helm", "install", "agentkube", "charts/agentkube", "-n", "agentkube-system", "--create-namespace")
	waitAvailable(b, 3*time.Minute, "agentkube-system")
	return time.Since(start)
}

func uninstallRuntimePlane(b testing.TB) {
	sh(b, "", "helm", "uninstall", "agentkube", "-n", "agentkube-system", "--wait")
	poll.UntilNamed(b, "the manager's pods gone", 2*time.Minute, func() error {
		pods, err := env.node.Kube.CoreV1().Pods("agentkube-system").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(pods.Items) != 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		return nil
	})
}

func BenchmarkHelmInstall(b *testing.B) {
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		samples = append(samples, installRuntimePlaneUnmanaged(b))
		uninstallRuntimePlane(b)
	}
	report(b, "install-to-available", samples)
}

func BenchmarkAgent(b *testing.B) {
	installRuntimePlaneUnmanaged(b)
	defer uninstallRuntimePlane(b)
	cfg := env.node.RESTConfig()
	ak, err := versioned.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var ready, firstInvoke, noop, get []time.Duration
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench-%d", i)
		a := &agentkubev1alpha1.Agent{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: agentkubev1alpha1.AgentSpec{
				Runtime: agentkubev1alpha1.RuntimeCustom, Image: env.busybox, Command: []string{"/bin/sh", "-c", ":"},
				Mode: agentkubev1alpha1.AgentModeSystem,
			},
		}
		start := time.Now()
		if _, err := ak.AgentkubeV1alpha1().Agents("default").Create(ctx, a, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		var podReady, answered time.Duration
		// Poll both at a fine grain: the pod's readiness and whether an invoke answers.
		deadline := time.Now().Add(3 * time.Minute)
		for answered == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("%s: no answer within 3 minutes", name)
			}
			if podReady == 0 && isPodReady(ctx, name) {
				podReady = time.Since(start)
			}
			if podReady != 0 {
				if code, _ := invokeNoop(ctx, hc, cfg.Host, name); code == http.StatusCreated || code == http.StatusOK {
					answered = time.Since(start)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		ready, firstInvoke = append(ready, podReady), append(firstInvoke, answered)

		t0 := time.Now()
		if code, body := invokeNoop(ctx, hc, cfg.Host, name); code >= 300 {
			b.Fatalf("no-op invoke: %d %s", code, body)
		}
		noop = append(noop, time.Since(t0))
		t0 = time.Now()
		if _, err := ak.AgentkubeV1alpha1().Agents("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
			b.Fatal(err)
		}
		get = append(get, time.Since(t0))
		if err := ak.AgentkubeV1alpha1().Agents("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			b.Fatal(err)
		}
	}
	report(b, "created-to-pod-ready", ready)
	report(b, "created-to-first-invoke", firstInvoke)
	report(b, "noop-invoke", noop)
	report(b, "get-agent", get)
	b.ReportMetric(float64(p50(noop))/float64(p50(get)), "noop-invoke/get-ratio")
}

func isPodReady(ctx context.Context, name string) bool {
	p, err := env.node.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// invokeNoop invokes an Agent through kube-apiserver's aggregation layer and waits for
// the run's result, as kubectl create --raw does.
func invokeNoop(ctx context.Context, hc *http.Client, host, name string) (int, string) {
	body := `{"apiVersion":"subresources.agentkube.io/v1alpha1","kind":"AgentInvocation","spec":{"input":"","waitSeconds":30}}`
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(host, "/")+fmt.Sprintf(invokeRaw, name), bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode < 300 && !bytes.Contains(data, []byte(`"phase":"Succeeded"`)) {
		return http.StatusAccepted, string(data) // answered, but the run did not succeed yet
	}
	return res.StatusCode, string(data)
}
