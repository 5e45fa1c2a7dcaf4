package webhook

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// admissionDuration is the time the handlers take, by rule and outcome. It excludes
// TLS and HTTP overhead, which kube-apiserver's
// apiserver_admission_webhook_admission_duration_seconds includes; comparing the two
// tells the network from the handler.
var admissionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Namespace: "agentkube",
	Subsystem: "webhook",
	Name:      "admission_duration_seconds",
	Help:      "Time to decide an admission request, by webhook (pods-exec, pods-managed, tools, agentruns-requester), operation and whether it was allowed.",
	// Decisions take a lookup or two against kube-apiserver: sub-millisecond to a few
	// milliseconds, with kube-apiserver's timeoutSeconds as the far end.
	Buckets: []float64{0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 10},
}, []string{"webhook", "operation", "allowed"})

func init() {
	ctrlmetrics.Registry.MustRegister(admissionDuration)
}

type instrumented struct {
	webhook string
	next    admission.Handler
}

// instrument records the latency and outcome of every decision of next.
func instrument(webhook string, next admission.Handler) admission.Handler {
	return &instrumented{webhook: webhook, next: next}
}

func (h *instrumented) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp := h.next.Handle(ctx, req)
	admissionDuration.WithLabelValues(h.webhook, string(req.Operation), strconv.FormatBool(resp.Allowed)).
		Observe(time.Since(start).Seconds())
	return resp
}
