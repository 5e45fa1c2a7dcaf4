package manager

import (
	"os"
	"path/filepath"
	"testing"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/test/poll"
)

// waitRunning waits until the run is Running in its agentlet.
func waitRunning(t testing.TB, ns, name string) {
	t.Helper()
	poll.UntilNamed(t, "run "+name+" running", waitFor, func() error {
		run, err := getRun(t, ns, name)
		if err != nil {
			return err
		}
		if run.Status.Phase != agentkubev1alpha1.AgentRunPhaseRunning {
			return errorf("phase %q: %s", run.Status.Phase, run.Status.Message)
		}
		return nil
	})
}

// TestManagerRestartMidRun stops the manager while a run is in progress and
// starts a new one (which takes the Lease over): the run is picked up again
// and ends truthfully; a run whose agentlet restarted meanwhile is failed
// with that reason, not left Running.
func TestManagerRestartMidRun(t *testing.T) {
	first := startManager(t, cluster.Config, nil)
	ns := cluster.CreateNamespace(t)
	k := startKubelet(t, ns)
	gate := filepath.Join(t.TempDir(), "go")
	createAgent(t, customAgent(ns, "steady", `while [ ! -e "$1" ]; do sleep 0.05; done; echo released`, gate))
	waitAgentPhase(t, ns, "steady", agentkubev1alpha1.AgentPhaseReady)

	createRun(t, ns, "long", "steady", "")
	waitRunning(t, ns, "long")
	waitAgentPhase(t, ns, "steady", agentkubev1alpha1.AgentPhaseRunning)
	first.stop()

	// The run finishes while no manager runs.
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	second := startManager(t, cluster.Config, nil)
	run := waitRun(t, ns, "long")
	if run.Status.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded || run.Status.OutputTail != "released\n" {
		t.Fatalf("after restart: %+v", run.Status)
	}

	// A run in progress whose agentlet restarts while the manager is down.
	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}
	createRun(t, ns, "lost", "steady", "")
	waitRunning(t, ns, "lost")
	second.stop()
	pod, err := getPod(t, ns, "steady")
	if err != nil {
		t.Fatal(err)
	}
	k.restartAgentlet(pod)
	startManager(t, cluster.Config, nil)
	run = waitRun(t, ns, "lost")
	if run.Status.Phase != agentkubev1alpha1.AgentRunPhaseFailed || completeReason(run) != agentkubev1alpha1.ReasonAgentletLostRun {
		t.Fatalf("lost run: %+v", run.Status)
	}
	t.Logf("lost run: %s", run.Status.Message)
}
