// Command agentkube-manager runs the agentkube runtime plane in one process: the
// controllers (Agents into pods, AgentRuns through the agentlet, schedules, Tools, MCP
// proxies, LLM gateways and Claw hosts), the admission webhook on :9443, the aggregated
// API subresources.agentkube.io on :8082, the certificates both serve, and, in managed
// mode, the tunnel to the platform. Configuration comes from AGENTKUBE_* variables and
// flags (flags win); see docs/manager.md.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/exo-in-go/exo/pkg/certs"
	apiserver "github.com/exo-in-go/exo/pkg/cmd/server"
	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/pkg/manager"
	agentregistry "github.com/exo-in-go/exo/pkg/registry/agent"
	"github.com/exo-in-go/exo/pkg/shellexec"
	"github.com/exo-in-go/exo/pkg/webhook"
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
	connectOpts, err := connect.OptionsFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	var certOpts certs.Options
	var webhookOpts webhook.Options
	apiOpts := apiserver.NewOptions()

	goFlags := flag.NewFlagSet("agentkube-manager", flag.ExitOnError)
	opts.BindFlags(goFlags)
	certOpts.AddFlags(goFlags)
	webhookOpts.AddFlags(goFlags)
	klog.InitFlags(goFlags)
	// The aggregated API keeps the upstream generic apiserver flag names (pflag);
	// --kubeconfig is its flag and configures the whole process.
	flags := pflag.NewFlagSet("agentkube-manager", pflag.ExitOnError)
	flags.AddGoFlagSet(goFlags)
	apiOpts.AddFlags(flags)
	if err := flags.Parse(os.Args[1:]); err != nil {
		return err
	}
	logger := klog.NewKlogr()
	ctrl.SetLogger(logger)

	if apiOpts.Kubeconfig != "" {
		if err := os.Setenv("KUBECONFIG", apiOpts.Kubeconfig); err != nil {
			return err
		}
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	// One certificate, from one Secret, serves the webhook and the aggregated API; the
	// leader rotates it and injects the CA into both registrations. The same Secret
	// holds the agentlet CA: the Agent controller issues every agentlet its
	// certificate from it, and every agentlet client here verifies against its bundle.
	certOpts.Namespace = opts.Namespace
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	certOpts.SetDefaults()
	certificates := certs.NewWatcher(kube, certOpts.Namespace, certOpts.SecretName)
	opts.AgentletCA = certificates
	m, err := manager.New(cfg, opts)
	if err != nil {
		return err
	}
	if err := certs.AddWatcherToManager(m, certOpts, certificates); err != nil {
		return err
	}
	webhookOpts.Certificates = certificates
	if _, err := webhook.AddToManager(m, webhookOpts); err != nil {
		return err
	}

	apiOpts.ClientConfig = m.GetConfig()
	apiOpts.ServingCert = certificates
	apiOpts.Agents = agentregistry.FromClient(m.GetCache())
	apiOpts.TokenSecretName = agent.TokenSecretName
	apiOpts.AgentletBundle = agentletBundle(certificates)
	aggregated, err := apiOpts.NewServer()
	if err != nil {
		return fmt.Errorf("aggregated API: %w", err)
	}
	if err := m.Add(aggregated); err != nil {
		return err
	}

	if connectOpts.Managed {
		connectOpts.Logger = logger.WithName("connect")
		shells, err := shellexec.New(shellexec.Options{Config: m.GetConfig(), Log: logger.WithName("shell")})
		if err != nil {
			return fmt.Errorf("shells: %w", err)
		}
		connectOpts.Shells = shells
		// Invocations from the platform stream their output, read from the
		// agentlet the same way the aggregated API's agents/log reads it.
		connectOpts.RunOutput = connect.AgentletOutput{
			Locator: &agentregistry.PodLocator{Client: kube, SecretName: agent.TokenSecretName,
				AgentletBundle: agentletBundle(certificates)},
		}
		if err := connect.AddToManager(m, connectOpts); err != nil {
			return err
		}
	}

	logger.Info("Starting agentkube-manager",
		"namespace", opts.Namespace, "leaderElection", opts.LeaderElection,
		"metrics", addr(m.MetricsAddr), "probes", addr(m.ProbeAddr),
		"webhookPort", webhookOpts.Port, "apiPort", apiOpts.SecureServing.BindPort,
		"managed", connectOpts.Managed,
		"kubeAPIQPS", opts.KubeAPIQPS, "kubeAPIBurst", opts.KubeAPIBurst,
		"images", opts.Images.String())
	// SIGTERM cancels the context: leadership is released at once so a
	// successor need not wait for the Lease to expire.
	return m.Start(ctrl.SetupSignalHandler())
}

// agentletBundle is the agentlet CA bundle the agentlet clients verify against.
func agentletBundle(w *certs.Watcher) func() []byte {
	return func() []byte { _, bundle := w.AgentletCA(); return bundle }
}

func addr(a fmt.Stringer) string {
	if a == nil {
		return "disabled"
	}
	return a.String()
}
