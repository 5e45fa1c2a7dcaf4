package certs

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// certificateNotAfter lets alerts fire well before anything expires, whatever
	// went wrong with the rotation.
	certificateNotAfter = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "agentkube",
		Name:      "certificate_not_after_timestamp_seconds",
		Help:      "Expiry of the manager's certificates: the current CA (leader only) and the serving certificate this replica serves.",
	}, []string{"certificate"})

	// certificateWrites counts what the rotator changed, by action.
	certificateWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "agentkube",
		Name:      "certificate_rotator_writes_total",
		Help:      "Writes of the certificate rotator, by target (secret, webhookconfiguration, apiservice).",
	}, []string{"target"})

	// certificateSyncErrors counts failed rotator syncs; they are retried with backoff.
	certificateSyncErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "agentkube",
		Name:      "certificate_rotator_sync_errors_total",
		Help:      "Failed syncs of the certificate rotator (retried with backoff).",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(certificateNotAfter, certificateWrites, certificateSyncErrors)
}
