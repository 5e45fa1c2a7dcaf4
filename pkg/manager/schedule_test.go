package manager

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/test/poll"
)

func runsOf(t testing.TB, ns string) []agentkubev1alpha1.AgentRun {
	t.Helper()
	list, err := cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

// TestSchedule drives a schedule with a fake clock: an occurrence creates a
// run; while it runs the next occurrence waits instead of starting a second
// run, and starts once the first ends; after a long "downtime" only one run
// catches up.
func TestSchedule(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	startManager(t, cluster.Config, func(o *Options) { o.Clock = clk })
	ns := cluster.CreateNamespace(t)
	startKubelet(t, ns)
	gate := filepath.Join(t.TempDir(), "go")
	a := customAgent(ns, "cron", `while [ ! -e "$1" ]; do sleep 0.05; done; echo tick`, gate)
	a.Spec.Schedule = "@every 1h"
	createAgent(t, a)
	waitAgentPhase(t, ns, "cron", agentkubev1alpha1.AgentPhaseReady)
	scheduled := func() *metav1.Condition {
		return meta.FindStatusCondition(getAgent(t, ns, "cron").Status.Conditions, agentkubev1alpha1.ConditionScheduled)
	}
	poll.UntilNamed(t, "schedule armed", waitFor, func() error {
		if c := scheduled(); c == nil || c.Reason != agentkubev1alpha1.ReasonArmed || getAgent(t, ns, "cron").Status.NextScheduleTime == nil {
			return errorf("Scheduled = %+v", c)
		}
		return nil
	})
	if n := len(runsOf(t, ns)); n != 0 {
		t.Fatalf("%d runs before the first occurrence", n)
	}

	// First occurrence.
	// "@every" counts from the Agent's creation, a little after the clock was made.
	clk.Step(time.Hour + time.Minute)
	poll.UntilNamed(t, "first scheduled run", waitFor, func() error {
		if runs := runsOf(t, ns); len(runs) != 1 || runs[0].Spec.Trigger != agentkubev1alpha1.RunTriggerSchedule {
			return errorf("runs = %d", len(runs))
		}
		return nil
	})
	first := runsOf(t, ns)[0].Name
	waitRunning(t, ns, first)

	// Second occurrence while the first still runs: it waits.
	clk.Step(time.Hour)
	poll.UntilNamed(t, "occurrence waits for the active run", waitFor, func() error {
		if c := scheduled(); c == nil || c.Reason != agentkubev1alpha1.ReasonPreviousRunActive {
			return errorf("Scheduled = %+v", c)
		}
		return nil
	})
	if runs := runsOf(t, ns); len(runs) != 1 {
		t.Fatalf("a second run started while the first was running: %d runs", len(runs))
	}

	// The first ends: the waiting occurrence (within its deadline) starts.
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitRun(t, ns, first)
	poll.UntilNamed(t, "waiting occurrence started", waitFor, func() error {
		if runs := runsOf(t, ns); len(runs) != 2 {
			return errorf("runs = %d", len(runs))
		}
		return nil
	})
	for _, r := range runsOf(t, ns) {
		waitRun(t, ns, r.Name)
	}

	// Ten hours of "downtime": one catch-up run, not ten.
	clk.Step(10 * time.Hour)
	poll.UntilNamed(t, "one catch-up run", waitFor, func() error {
		if runs := runsOf(t, ns); len(runs) != 3 {
			return errorf("runs = %d", len(runs))
		}
		return nil
	})
	for _, r := range runsOf(t, ns) {
		waitRun(t, ns, r.Name)
	}
	poll.UntilNamed(t, "schedule re-armed", waitFor, func() error {
		ag := getAgent(t, ns, "cron")
		if ag.Status.NextScheduleTime == nil || !ag.Status.NextScheduleTime.After(clk.Now()) {
			return errorf("nextScheduleTime = %v, now %v", ag.Status.NextScheduleTime, clk.Now())
		}
		if c := scheduled(); c == nil || c.Reason != agentkubev1alpha1.ReasonArmed {
			return errorf("Scheduled = %+v", c)
		}
		return nil
	})
	if runs := runsOf(t, ns); len(runs) != 3 {
		t.Fatalf("runs after catch-up = %d, want 3", len(runs))
	}
}
