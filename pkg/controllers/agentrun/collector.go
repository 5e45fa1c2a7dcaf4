package agentrun

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/metrics"
)

// runsByPhaseCollector refreshes agentkube_agent_runs{phase} from the cache.
// Counting from the cache, instead of incrementing on transitions, keeps the
// gauge right across manager restarts and deletions.
type runsByPhaseCollector struct {
	client client.Reader
}

// NeedLeaderElection: every replica serves metrics about what it sees.
func (c *runsByPhaseCollector) NeedLeaderElection() bool { return false }

func (c *runsByPhaseCollector) Start(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		c.collect(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (c *runsByPhaseCollector) collect(ctx context.Context) {
	var runs agentkubev1alpha1.AgentRunList
	if err := c.client.List(ctx, &runs); err != nil {
		log.FromContext(ctx).Error(err, "Count AgentRuns by phase")
		return
	}
	counts := map[string]float64{
		agentkubev1alpha1.AgentRunPhasePending: 0, agentkubev1alpha1.AgentRunPhaseRunning: 0,
		agentkubev1alpha1.AgentRunPhaseSucceeded: 0, agentkubev1alpha1.AgentRunPhaseFailed: 0,
		agentkubev1alpha1.AgentRunPhaseTimedOut: 0,
	}
	for _, r := range runs.Items {
		phase := r.Status.Phase
		if phase == "" {
			phase = agentkubev1alpha1.AgentRunPhasePending
		}
		counts[phase]++
	}
	for phase, n := range counts {
		metrics.RunsByPhase.WithLabelValues(phase).Set(n)
	}
}
