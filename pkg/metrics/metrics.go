// Package metrics holds agentkube's own Prometheus metrics. They are
// registered on controller-runtime's registry, so the manager's /metrics
// endpoint serves them next to the controller-runtime and client-go ones.
//
// Labels are kept to bounded sets (controller, result, phase, trigger): never
// a namespace or an object name, which would grow without limit.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

const namespace = "agentkube"

// Reconcile results.
const (
	ResultSuccess = "success"
	ResultError   = "error"
	ResultRequeue = "requeue"
)

var (
	// Reconciles counts reconciles per controller and result.
	Reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "reconciles_total",
		Help:      "Reconciles by agentkube controllers, by controller and result (success, requeue, error).",
	}, []string{"controller", "result"})

	// RunsFinished counts AgentRuns that reached a terminal phase.
	RunsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "agent_runs_finished_total",
		Help:      "AgentRuns that reached a terminal phase (Succeeded, Failed, TimedOut), by phase and reason.",
	}, []string{"phase", "reason"})

	// RunDuration observes how long finished runs ran.
	RunDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "agent_run_duration_seconds",
		Help:      "Duration of finished AgentRuns from start to completion, by terminal phase.",
		// Agent runs last from seconds to hours.
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400},
	}, []string{"phase"})

	// Invocations counts runs handed to an agentlet, by what triggered them.
	Invocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "agent_invocations_total",
		Help:      "AgentRuns started in an agentlet, by trigger (Manual, Schedule, Invoke, Platform).",
	}, []string{"trigger"})

	// ScheduledRuns counts runs the schedule created, and occurrences it skipped.
	ScheduledRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "schedule_occurrences_total",
		Help:      "Schedule occurrences by outcome (created, missed: older than the starting deadline).",
	}, []string{"outcome"})

	// RunsByPhase is the number of AgentRuns per phase, as the manager's cache
	// sees them; set by the AgentRun controller's collector.
	RunsByPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "agent_runs",
		Help:      "AgentRuns currently stored, by phase.",
	}, []string{"phase"})
)

var registerOnce sync.Once

// Register adds the metrics to controller-runtime's registry. It is safe to
// call more than once (tests start several managers in one process).
func Register() {
	registerOnce.Do(func() {
		ctrlmetrics.Registry.MustRegister(Reconciles, RunsFinished, RunDuration, Invocations, ScheduledRuns, RunsByPhase)
	})
}

// ObserveReconcile records one reconcile's outcome.
func ObserveReconcile(controller string, requeue bool, err error) {
	switch {
	case err != nil:
		Reconciles.WithLabelValues(controller, ResultError).Inc()
	case requeue:
		Reconciles.WithLabelValues(controller, ResultRequeue).Inc()
	default:
		Reconciles.WithLabelValues(controller, ResultSuccess).Inc()
	}
}

// ObserveRunFinished records a run reaching a terminal phase.
func ObserveRunFinished(phase, reason string, start, end time.Time) {
	RunsFinished.WithLabelValues(phase, reason).Inc()
	if !start.IsZero() && !end.Before(start) {
		RunDuration.WithLabelValues(phase).Observe(end.Sub(start).Seconds())
	}
}
