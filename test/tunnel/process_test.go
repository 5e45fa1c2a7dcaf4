package tunnel_test

// The tests in this file run exo-app and agentkube-manager as real processes
// (built from ./cmd) and kill, stop and continue them with signals. Like
// every test of the package they compare the whole cluster with the view,
// so none of them runs in parallel, and each stops its processes when it
// ends.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/test/poll"
)

// seedAgents creates a few Agents so the first snapshot is not empty.
func seedAgents(t *testing.T, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 5 {
		if err := cluster.Client.Create(ctx, newAgent(ns, fmt.Sprintf("seed-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// startChurn runs churn in ns until the returned function is called; that
// function waits for it and returns the number of changes.
func startChurn(t *testing.T, ns string) (stop func() int) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var ops int
	wg.Add(1)
	go func() { defer wg.Done(); ops = churn(t, ns, done) }()
	var once sync.Once
	stop = func() int {
		once.Do(func() { close(done); wg.Wait() })
		return ops
	}
	t.Cleanup(func() { stop() }) // a failed test still ends its churn
	return stop
}

// exo-app is killed with SIGKILL while the cluster changes at about 100
// objects/s, and started again on the same port and SQLite file. The
// manager reconnects, and the new process's view equals the cluster
// exactly: nothing missing, nothing stale.
func TestProcessExoAppKill9(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	seedAgents(t, ns)
	bin := processBinaries(t)
	app := startExoApp(t, bin)
	api := app.api()
	jwt, id, token := api.deployment("kill9@example.com")
	startManagerProc(t, bin, app.url(), token, managerOpts{
		clusterID: "proc-kill9", leaseID: "tunnel-kill9-" + ns,
		leaseDuration: 15 * time.Second, renewDeadline: 10 * time.Second, retryPeriod: 2 * time.Second,
	})
	waitConnected(t, api, jwt, id, "proc-kill9", time.Minute)
	waitConverged(t, api, jwt, id)

	stop := startChurn(t, ns)
	time.Sleep(time.Second) // let changes flow as deltas
	oldPID := app.proc.PID()
	app.kill9()
	time.Sleep(500 * time.Millisecond) // changes while exo-app is down
	restartAt := time.Now()
	app.start()
	t.Logf("exo-app pid %d killed with SIGKILL, restarted as pid %d in %s", oldPID, app.proc.PID(), time.Since(restartAt).Round(time.Millisecond))
	time.Sleep(time.Second) // changes after the restart
	t.Logf("%d changes during the test", stop())

	v := waitConnected(t, api, jwt, id, "proc-kill9", time.Minute)
	waitConverged(t, api, jwt, id)
	t.Logf("converged: %d objects in the view", len(v.Objects))

	// The new exo-app saw the manager come back (the deployment had been
	// connected before), so the reconnect was audited.
	type auditEvent struct {
		Action   string `json:"action"`
		TargetID string `json:"target_id"`
	}
	var audit struct{ Items []auditEvent }
	if code := api.do("GET", "/api/v1/audit", jwt, nil, &audit); code != http.StatusOK {
		t.Fatalf("GET audit: HTTP %d", code)
	}
	if !slices.ContainsFunc(audit.Items, func(a auditEvent) bool {
		return a.Action == agentkube.AuditDeploymentReconnected && a.TargetID == id
	}) {
		t.Fatalf("no %s audit event after exo-app was restarted", agentkube.AuditDeploymentReconnected)
	}
}

// Two managers run with leader election; only the leader holds the tunnel.
// The leader is killed with SIGKILL while the cluster changes; the standby
// takes the Lease, connects, and the view converges to the cluster exactly.
func TestProcessManagerLeaderKilled(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	seedAgents(t, ns)
	bin := processBinaries(t)
	app := startExoApp(t, bin)
	api := app.api()
	jwt, id, token := api.deployment("leader@example.com")
	// A short Lease so the takeover is quick; the renew deadline still
	// leaves the leader room on two busy cores.
	opts := managerOpts{
		leaseID:       "tunnel-leader-" + ns,
		leaseDuration: 5 * time.Second, renewDeadline: 4 * time.Second, retryPeriod: time.Second,
	}
	opts.clusterID = "proc-a"
	a := startManagerProc(t, bin, app.url(), token, opts)
	opts.clusterID = "proc-b"
	b := startManagerProc(t, bin, app.url(), token, opts)

	// Only the leader runs the connector, so the cluster id the platform
	// shows names the leader.
	var v agentkube.ClusterView
	poll.Until(t, time.Minute, func() error {
		var err error
		if v, err = clusterView(api, jwt, id); err != nil {
			return err
		}
		if !v.Connected || !v.Synced {
			return fmt.Errorf("view: status %q connected %v synced %v", v.Status, v.Connected, v.Synced)
		}
		return nil
	})
	leader, standby := a, b
	switch v.ClusterID {
	case a.clusterID:
	case b.clusterID:
		leader, standby = b, a
	default:
		t.Fatalf("view served by cluster id %q, want %q or %q", v.ClusterID, a.clusterID, b.clusterID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	holderBefore, err := leaseHolder(ctx, opts.leaseID)
	if err != nil || holderBefore == "" {
		t.Fatalf("leader Lease holder %q: %v", holderBefore, err)
	}
	t.Logf("leader %s (pid %d, Lease holder %s), standby %s (pid %d)", leader.clusterID, leader.PID(), holderBefore, standby.clusterID, standby.PID())
	waitConverged(t, api, jwt, id)

	stop := startChurn(t, ns)
	time.Sleep(time.Second) // let changes flow as deltas
	if v, err := clusterView(api, jwt, id); err != nil || v.ClusterID != leader.clusterID {
		t.Fatalf("before the kill the view is served by %q (%v), want the leader %q", v.ClusterID, err, leader.clusterID)
	}
	killAt := time.Now()
	leader.Signal(t, syscall.SIGKILL)
	leader.WaitKilled(t, syscall.SIGKILL, 10*time.Second)

	waitConnected(t, api, jwt, id, standby.clusterID, time.Minute)
	takeover := time.Since(killAt)
	var holderAfter string
	poll.Until(t, 30*time.Second, func() error {
		var err error
		if holderAfter, err = leaseHolder(ctx, opts.leaseID); err != nil {
			return err
		}
		if holderAfter == "" || holderAfter == holderBefore {
			return fmt.Errorf("Lease still held by %q", holderAfter)
		}
		return nil
	})
	t.Logf("standby %s took over in %s (Lease duration %s; holder now %s)", standby.clusterID, takeover.Round(time.Millisecond), opts.leaseDuration, holderAfter)
	time.Sleep(time.Second) // changes under the new leader
	t.Logf("%d changes during the test", stop())

	waitConverged(t, api, jwt, id)
	if err := standby.Exited(); err != nil {
		t.Fatal(err)
	}
	if v, err := clusterView(api, jwt, id); err != nil || v.ClusterID != standby.clusterID || !v.Connected {
		t.Fatalf("after convergence the view is served by %q connected %v (%v), want %q", v.ClusterID, v.Connected, err, standby.clusterID)
	}
}

// transition is a deployment status the test observed, with when it first
// saw it and the stored last_heartbeat_at.
type transition struct {
	status string
	at     time.Time
	hb     time.Time
}

// The manager is frozen with SIGSTOP (its socket stays open, nothing is
// sent): the deployment turns degraded after EXO_TUNNEL_DEGRADED_AFTER and
// offline after EXO_TUNNEL_OFFLINE_AFTER without a frame, its last
// heartbeat frozen. SIGCONT brings it back to connected.
func TestProcessOperatorStopped(t *testing.T) {
	bin := processBinaries(t)
	app := startExoApp(t, bin)
	api := app.api()
	jwt, id, token := api.deployment("stop@example.com")
	// A renew deadline far above the stop, so the frozen leader keeps its
	// Lease and resumes as it was (a lost Lease would end the process).
	m := startManagerProc(t, bin, app.url(), token, managerOpts{
		clusterID: "proc-stop", leaseID: fmt.Sprintf("tunnel-stop-%d", time.Now().UnixNano()),
		leaseDuration: time.Minute, renewDeadline: 40 * time.Second, retryPeriod: 2 * time.Second,
	})
	waitConnected(t, api, jwt, id, "proc-stop", time.Minute)
	poll.Until(t, 30*time.Second, func() error {
		d, err := getDeployment(api, jwt, id)
		if err == nil && d.Status != store.StatusConnected {
			err = fmt.Errorf("status %q, want connected", d.Status)
		}
		return err
	})

	// poll records every status change until done says stop or the hang
	// guard passes.
	poll := func(from transition, guard time.Duration, done func(store.Deployment) bool) []transition {
		t.Helper()
		seen := []transition{from}
		deadline := time.Now().Add(guard)
		for {
			d, err := getDeployment(api, jwt, id)
			at := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			if d.LastHeartbeatAt == nil {
				t.Fatalf("status %q without last_heartbeat_at", d.Status)
			}
			last := seen[len(seen)-1]
			if d.Status != last.status || !d.LastHeartbeatAt.Equal(last.hb) {
				seen = append(seen, transition{d.Status, at, *d.LastHeartbeatAt})
			}
			if done(d) {
				return seen
			}
			if at.After(deadline) {
				t.Fatalf("no end after %s; observed %v", guard, seen)
			}
			time.Sleep(50 * time.Millisecond) // polling the stored status
		}
	}

	d, err := getDeployment(api, jwt, id)
	if err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	m.Signal(t, syscall.SIGSTOP)
	stopped := poll(transition{d.Status, stopAt, *d.LastHeartbeatAt}, 30*time.Second,
		func(d store.Deployment) bool { return d.Status == store.StatusOffline })
	contAt := time.Now()
	m.Signal(t, syscall.SIGCONT)
	resumed := poll(stopped[len(stopped)-1], 30*time.Second,
		func(d store.Deployment) bool { return d.Status == store.StatusConnected })
	if err := m.Exited(); err != nil {
		t.Fatal(err)
	}

	for _, tr := range stopped[1:] {
		t.Logf("stopped: %-9s seen %6s after SIGSTOP; last_heartbeat_at %s after SIGSTOP", tr.status,
			tr.at.Sub(stopAt).Round(time.Millisecond), tr.hb.Sub(stopAt).Round(time.Millisecond))
	}
	for _, tr := range resumed[1:] {
		t.Logf("resumed: %-9s seen %6s after SIGCONT; last_heartbeat_at %s after SIGCONT", tr.status,
			tr.at.Sub(contAt).Round(time.Millisecond), tr.hb.Sub(contAt).Round(time.Millisecond))
	}

	// Frozen: degraded, then offline, nothing else; the status written at
	// degraded carries the last frame seen, which offline keeps.
	var statuses []string
	for _, tr := range stopped {
		statuses = append(statuses, tr.status)
	}
	if want := []string{store.StatusConnected, store.StatusDegraded, store.StatusOffline}; !slices.Equal(statuses, want) {
		t.Fatalf("statuses while stopped %v, want %v", statuses, want)
	}
	degraded, offline := stopped[1], stopped[2]
	if !offline.hb.Equal(degraded.hb) {
		t.Fatalf("last_heartbeat_at advanced while stopped: %s at degraded, %s at offline", degraded.hb, offline.hb)
	}
	lastFrame := degraded.hb
	if lastFrame.After(stopAt.Add(time.Second)) {
		t.Fatalf("last frame at %s, %s after SIGSTOP: a stopped process sent frames", lastFrame, lastFrame.Sub(stopAt))
	}
	if age := degraded.at.Sub(lastFrame); age < procDegradedAfter {
		t.Fatalf("degraded %s after the last frame, before its window %s", age, procDegradedAfter)
	}
	if age := offline.at.Sub(lastFrame); age < procOfflineAfter {
		t.Fatalf("offline %s after the last frame, before its window %s", age, procOfflineAfter)
	}
	t.Logf("last frame %s before SIGSTOP; degraded %s and offline %s after it (windows %s, %s)",
		stopAt.Sub(lastFrame).Round(time.Millisecond), degraded.at.Sub(lastFrame).Round(time.Millisecond),
		offline.at.Sub(lastFrame).Round(time.Millisecond), procDegradedAfter, procOfflineAfter)

	// Continued: connected again, with a heartbeat after the freeze.
	back := resumed[len(resumed)-1]
	if !back.hb.After(lastFrame) {
		t.Fatalf("connected again with last_heartbeat_at %s, not after the last frame before the stop %s", back.hb, lastFrame)
	}
	waitConnected(t, api, jwt, id, "proc-stop", 30*time.Second)
}
