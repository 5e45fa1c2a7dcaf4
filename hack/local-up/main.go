// Command local-up runs the system locally from the cached Kubernetes binaries, for
// `make run`: etcd and kube-apiserver with aggregation configured, the agentkube CRDs
// and a sample Agent. It prints how to reach it and stops everything on Ctrl-C.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/exo-in-go/exo/test/framework"
)

func main() {
	if err := run(); err != nil {
		slog.Error("local-up failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := framework.RepoRoot()
	dir := filepath.Join(root, "_output", "local-up")
	// A fresh folder each time: the control plane's state does not outlive a run.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("cleaning %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	logFile, err := os.Create(filepath.Join(dir, "control-plane.log"))
	if err != nil {
		return fmt.Errorf("creating control plane log: %w", err)
	}
	defer logFile.Close()

	slog.Info("starting etcd and kube-apiserver (the first run builds them from the Go module proxy)")
	startCtx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	cluster, err := framework.Start(startCtx, framework.Options{Dir: dir, Out: logFile})
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		slog.Info("stopping the control plane")
		if err := cluster.Stop(); err != nil {
			slog.Error("stopping the control plane", "err", err)
		}
	}()

	sample := filepath.Join(root, "artifacts", "samples", "agent-hello.yaml")
	if _, _, err := cluster.Kubectl(ctx, "", "apply", "-f", sample); err != nil {
		return fmt.Errorf("applying the sample Agent: %w", err)
	}

	kubectl := filepath.Join(cluster.BinDir, "kubectl")
	fmt.Printf(`
Exo in Go is running locally.

  kube-apiserver  %s
  kubeconfig      %s
  logs            %s

Try:
  export KUBECONFIG=%s
  %s get agents

Press Ctrl-C to stop everything.
`, cluster.APIServerURL(), cluster.KubeconfigPath, logFile.Name(), cluster.KubeconfigPath, kubectl)

	<-ctx.Done()
	return nil
}
