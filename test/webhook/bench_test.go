package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

const toolCreatesPerRun = 1000

// BenchmarkToolAdmission creates 1,000 valid Tools per iteration and reports the
// admission latency kube-apiserver measured for the tools.agentkube.io webhook
// (apiserver_admission_webhook_admission_duration_seconds, scraped from its /metrics
// before and after), next to the handler's own histogram and the client's view of
// each create.
//
// kube-apiserver's buckets are coarse (5 ms, 25 ms, ...), so its p99 is interpolated
// within a bucket, the way Prometheus' histogram_quantile does; apiserver-le-5ms-%
// says how many calls finished within its first bucket.
func BenchmarkToolAdmission(b *testing.B) {
	ctx := testContext(b, 15*time.Minute)
	ns := cluster.CreateNamespace(b)
	createCredentials(ctx, b, ns, "db-creds")
	tools := cluster.Agentkube.AgentkubeV1alpha1().Tools(ns)
	apiserverSelector := map[string]string{"name": "tools.agentkube.io", "type": "validating", "operation": "CREATE", "rejected": "false"}
	handlerSelector := map[string]string{"webhook": "tools", "operation": "CREATE", "allowed": "true"}

	run := 0
	for b.Loop() {
		before, err := scrapeAPIServer(ctx)
		if err != nil {
			b.Fatal(err)
		}
		handlerBefore, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			b.Fatal(err)
		}
		client := make([]time.Duration, 0, toolCreatesPerRun)
		for i := range toolCreatesPerRun {
			start := time.Now()
			if _, err := tools.Create(ctx, postgresTool(fmt.Sprintf("bench-%d-%04d", run, i), "db-creds", "password"), metav1.CreateOptions{}); err != nil {
				b.Fatalf("create %d: %v", i, err)
			}
			client = append(client, time.Since(start))
		}
		after, err := scrapeAPIServer(ctx)
		if err != nil {
			b.Fatal(err)
		}
		handlerAfter, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			b.Fatal(err)
		}
		run++

		apiserver := histogramDelta(before, after, "apiserver_admission_webhook_admission_duration_seconds", apiserverSelector)
		if apiserver.count < toolCreatesPerRun {
			b.Fatalf("kube-apiserver recorded %d webhook calls for %d creates", apiserver.count, toolCreatesPerRun)
		}
		handler := histogramDelta(familyMap(handlerBefore), familyMap(handlerAfter), "agentkube_webhook_admission_duration_seconds", handlerSelector)
		slices.Sort(client)

		b.ReportMetric(apiserver.quantile(0.99)*1e3, "apiserver-p99-ms")
		b.ReportMetric(apiserver.quantile(0.50)*1e3, "apiserver-p50-ms")
		b.ReportMetric(100*apiserver.fractionWithin(0.005), "apiserver-le-5ms-%")
		b.ReportMetric(handler.quantile(0.99)*1e3, "handler-p99-ms")
		b.ReportMetric(float64(client[len(client)*99/100].Microseconds())/1e3, "client-p99-ms")
		b.ReportMetric(float64(toolCreatesPerRun), "creates/op")
	}
}

func scrapeAPIServer(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	raw, err := cluster.Kube.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("scraping kube-apiserver /metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing kube-apiserver metrics: %w", err)
	}
	return families, nil
}

func familyMap(families []*dto.MetricFamily) map[string]*dto.MetricFamily {
	m := make(map[string]*dto.MetricFamily, len(families))
	for _, f := range families {
		m[f.GetName()] = f
	}
	return m
}

// histogram is a cumulative histogram: counts[i] observations ≤ bounds[i].
type histogram struct {
	bounds []float64
	counts []uint64
	count  uint64
}

// histogramDelta is what the series of family matching selector observed between
// two scrapes.
func histogramDelta(before, after map[string]*dto.MetricFamily, family string, selector map[string]string) histogram {
	find := func(families map[string]*dto.MetricFamily) *dto.Histogram {
		f := families[family]
		if f == nil {
			return nil
		}
	metrics:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range selector {
				if labels[k] != v {
					continue metrics
				}
			}
			return m.GetHistogram()
		}
		return nil
	}
	a := find(after)
	if a == nil {
		return histogram{}
	}
	h := histogram{count: a.GetSampleCount()}
	prev := map[float64]uint64{}
	if b := find(before); b != nil {
		h.count -= b.GetSampleCount()
		for _, bk := range b.GetBucket() {
			prev[bk.GetUpperBound()] = bk.GetCumulativeCount()
		}
	}
	for _, bk := range a.GetBucket() {
		h.bounds = append(h.bounds, bk.GetUpperBound())
		h.counts = append(h.counts, bk.GetCumulativeCount()-prev[bk.GetUpperBound()])
	}
	return h
}

// quantile interpolates linearly within the bucket that holds the q-quantile, as
// Prometheus' histogram_quantile does.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * float64(h.count)
	lower, below := 0.0, uint64(0)
	for i, upper := range h.bounds {
		if float64(h.counts[i]) >= rank {
			inBucket := h.counts[i] - below
			if inBucket == 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-float64(below))/float64(inBucket)
		}
		lower, below = upper, h.counts[i]
	}
	return math.Inf(1)
}

func (h histogram) fractionWithin(bound float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	for i, upper := range h.bounds {
		if upper == bound {
			return float64(h.counts[i]) / float64(h.count)
		}
	}
	return math.NaN()
}
