// Command local-up runs the whole system locally from the cached Kubernetes binaries,
// for `make run`: etcd and kube-apiserver with aggregation, kube-controller-manager and
// kube-scheduler, localnode, the platform (exo-app on SQLite, seeded with a tenant, an
// administrator and a deployment), and agentkube-manager in managed mode with that
// deployment's token, plus a sample Agent. Once that Agent is Ready it prints how to
// reach everything; it stops all of it on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/test/framework"
)

func main() {
	if err := run(); err != nil {
		slog.Error("local-up failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	root := framework.RepoRoot()
	bin := flag.String("bin", filepath.Join(root, "_output", "bin"), "folder with the built exo-app, agentkube-manager, agentlet and kubectl-agent")
	dir := flag.String("dir", filepath.Join(root, "_output", "local-up"), "folder for the run's state and logs (emptied at start)")
	port := flag.Int("port", 9092, "port of exo-app")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	for _, b := range []string{"exo-app", "agentkube-manager", "agentlet", "kubectl-agent"} {
		if _, err := os.Stat(filepath.Join(*bin, b)); err != nil {
			return fmt.Errorf("%s is not built (run `make build`): %w", b, err)
		}
	}
	// A fresh folder each time: no state outlives a run.
	if err := os.RemoveAll(*dir); err != nil {
		return fmt.Errorf("cleaning %s: %w", *dir, err)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", *dir, err)
	}
	logs := map[string]*os.File{}
	for _, name := range []string{"control-plane", "kube-controller-manager", "kube-scheduler", "exo-app", "agentkube-manager", "localnode"} {
		f, err := os.Create(filepath.Join(*dir, name+".log"))
		if err != nil {
			return err
		}
		defer f.Close()
		logs[name] = f
	}

	slog.Info("starting etcd, kube-apiserver, kube-controller-manager and kube-scheduler (the first run builds them from the Go module proxy)")
	startCtx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	cluster, err := framework.Start(startCtx, framework.Options{
		Dir: filepath.Join(*dir, "cluster"),
		Out: logs["control-plane"],
		// Garbage collection, namespace deletion, ClusterRole aggregation, ServiceAccounts
		// and scheduling as in a cluster; localnode only runs what the scheduler binds.
		Controllers: &framework.Controllers{ControllerManagerOut: logs["kube-controller-manager"], SchedulerOut: logs["kube-scheduler"]},
	})
	cancel()
	if err != nil {
		return fmt.Errorf("%w (logs: %s/{control-plane,kube-controller-manager,kube-scheduler}.log)", err, *dir)
	}
	defer func() {
		slog.Info("stopping the control plane")
		if err := cluster.Stop(); err != nil {
			slog.Error("stopping the control plane", "err", err)
		}
	}()

	slog.Info("starting exo-app", "port", *port)
	plat, err := startPlatform(ctx, *bin, *dir, *port, logs["exo-app"])
	if plat != nil && plat.proc != nil {
		defer plat.proc.stop(15 * time.Second)
	}
	if err != nil {
		return withLog(err, logs["exo-app"])
	}

	slog.Info("starting localnode")
	nodeCtx, stopNode := context.WithCancel(context.Background())
	nodeDone, err := startNode(nodeCtx, cluster, *bin, *dir, slog.New(slog.NewTextHandler(logs["localnode"], nil)))
	if err != nil {
		stopNode()
		return err
	}
	defer func() {
		stopNode()
		if err := <-nodeDone; err != nil && !errors.Is(err, context.Canceled) {
			slog.Error("localnode", "err", err)
		}
	}()

	slog.Info("starting agentkube-manager")
	if err := installManagerObjects(ctx, cluster, root); err != nil {
		return err
	}
	mgr, err := startManager(ctx, cluster, *bin, *dir, plat, logs["agentkube-manager"])
	if mgr != nil {
		defer mgr.stop(30 * time.Second)
	}
	if err != nil {
		return withLog(err, logs["agentkube-manager"])
	}

	sample := filepath.Join(root, "artifacts", "samples", "agent-hello.yaml")
	if _, _, err := cluster.Kubectl(ctx, "", "apply", "-f", sample); err != nil {
		return fmt.Errorf("applying the sample Agent: %w", err)
	}
	slog.Info("waiting for the sample Agent to be Ready", "agent", sampleNamespace+"/"+sampleAgent)
	if err := waitForAgentReady(ctx, cluster, sampleNamespace, sampleAgent, mgr, plat.proc); err != nil {
		return withLog(err, logs["agentkube-manager"])
	}

	printWelcome(cluster, plat, *bin, *dir)

	select {
	case <-ctx.Done():
	case <-mgr.done:
		return withLog(fmt.Errorf("agentkube-manager exited: %v", mgr.err), logs["agentkube-manager"])
	case <-plat.proc.done:
		return withLog(fmt.Errorf("exo-app exited: %v", plat.proc.err), logs["exo-app"])
	}
	slog.Info("stopping")
	return nil
}

func printWelcome(cluster *framework.Cluster, plat *platform, bin, dir string) {
	fmt.Printf(`
Exo in Go is running locally.

  UI              %s
  sign in         %s / %s
  kubeconfig      %s
  logs            %s/*.log

Try, in another shell:
  export KUBECONFIG=%s PATH=%s:%s:$PATH
  kubectl get agents
  kubectl agent invoke hello --input "world" --wait
  open %s/deployments/%s/agents/default/hello and press "Open shell"

Press Ctrl-C to stop everything.
`, plat.url, adminEmail, adminPassword, cluster.KubeconfigPath, dir,
		cluster.KubeconfigPath, bin, cluster.BinDir, plat.url, plat.deployID)
}

// The sample Agent of artifacts/samples/agent-hello.yaml, which the welcome names.
const sampleNamespace, sampleAgent = "default", "hello"

// waitForAgentReady waits until the manager reports the Agent Ready for its current
// spec (its pod bound by kube-scheduler, started by localnode and passing its readiness
// probe), so an invoke right after the welcome runs instead of answering 503. It gives
// up as soon as one of procs exits.
func waitForAgentReady(ctx context.Context, cluster *framework.Cluster, ns, name string, procs ...*process) error {
	last := "not created"
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return false, err
			}
		}
		agent, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := meta.FindStatusCondition(agent.Status.Conditions, agentkubev1alpha1.ConditionReady)
		if ready == nil || agent.Status.ObservedGeneration != agent.Generation {
			last = "status not reconciled yet (phase " + agent.Status.Phase + ")"
			return false, nil
		}
		last = fmt.Sprintf("Ready=%s %s: %s", ready.Status, ready.Reason, ready.Message)
		return ready.Status == metav1.ConditionTrue, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for Agent %s/%s to be Ready (last: %s): %w", ns, name, last, err)
	}
	return nil
}
