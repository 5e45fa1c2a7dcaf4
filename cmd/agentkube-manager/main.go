// Command agentkube-manager runs the agentkube controllers: Agents into pods,
// AgentRuns through the agentlet, schedules, Tools, MCP proxies, LLM gateways
// and Claw hosts. Configuration comes from AGENTKUBE_* variables and flags
// (flags win); see docs/manager.md.
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/exo-in-go/exo/pkg/manager"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "agentkube-manager:", err)
		os.Exit(1)
	}
}

func run() error {
	opts, err := manager.FromEnvironment()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("agentkube-manager", flag.ExitOnError)
	opts.BindFlags(fs)
	klog.InitFlags(fs)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file; in-cluster configuration when empty (also KUBECONFIG)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	logger := klog.NewKlogr()
	ctrl.SetLogger(logger)

	if *kubeconfig != "" {
		if err := os.Setenv("KUBECONFIG", *kubeconfig); err != nil {
			return err
		}
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	m, err := manager.New(cfg, opts)
	if err != nil {
		return err
	}
	logger.Info("Starting agentkube-manager",
		"namespace", opts.Namespace, "leaderElection", opts.LeaderElection,
		"metrics", addr(m.MetricsAddr), "probes", addr(m.ProbeAddr),
		"kubeAPIQPS", opts.KubeAPIQPS, "kubeAPIBurst", opts.KubeAPIBurst,
		"images", opts.Images.String())
	// SIGTERM cancels the context: leadership is released at once so a
	// successor need not wait for the Lease to expire.
	return m.Start(ctrl.SetupSignalHandler())
}

func addr(a fmt.Stringer) string {
	if a == nil {
		return "disabled"
	}
	return a.String()
}
