// Package app assembles agentkube-manager: the one function, New, that
// cmd/agentkube-manager's main (through Main) and every test harness call, so
// a test runs exactly the process that ships. It builds the controller-runtime
// manager with every controller (pkg/manager), the certificate Watcher and
// rotator whose Secret serves the webhook and the aggregated API and holds the
// agentlet CA (pkg/certs), the admission webhook (pkg/webhook), the aggregated
// API server (pkg/cmd/server) and, in managed mode, the platform connector
// with its shells (pkg/connect, pkg/shellexec).
//
// Its settings are one table (NewSettings): every setting a flag with an
// AGENTKUBE_* variable (pkg/cmd/options), defaults < variables < flags.
package app

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/cmd/options"
	apiserver "github.com/exo-in-go/exo/pkg/cmd/server"
	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/manager"
	agentregistry "github.com/exo-in-go/exo/pkg/registry/agent"
	"github.com/exo-in-go/exo/pkg/runtimes"
	"github.com/exo-in-go/exo/pkg/shellexec"
	"github.com/exo-in-go/exo/pkg/webhook"
)

// EnvPrefix starts every setting's variable: --kube-api-qps ⇔
// AGENTKUBE_KUBE_API_QPS.
const EnvPrefix = "AGENTKUBE_"

// Settings are agentkube-manager's settings, one field per component.
type Settings struct {
	Manager manager.Options
	Certs   certs.Options
	Webhook webhook.Options
	API     *apiserver.Options
	Connect connect.Options
}

// DefaultSettings are the production defaults.
func DefaultSettings() *Settings {
	return &Settings{Manager: manager.DefaultOptions(), Webhook: webhook.Options{Port: webhook.DefaultPort}, API: apiserver.NewOptions()}
}

// NewSettings is agentkube-manager's table over DefaultSettings: the
// manager's, certificates', webhook's, connector's and aggregated API's
// flags (the latter with the upstream generic apiserver names) and klog's,
// each with its AGENTKUBE_* variable.
func NewSettings() (*options.Set, *Settings) {
	st := DefaultSettings()
	s := options.New("agentkube-manager", EnvPrefix)
	s.Description = "agentkube-manager: the agentkube controllers, admission webhook, aggregated API subresources.agentkube.io and, in managed mode, the tunnel to the Exo platform (docs/manager.md)."
	goFlags := flag.NewFlagSet("agentkube-manager", flag.ContinueOnError)
	st.Manager.BindFlags(goFlags)
	st.Certs.AddFlags(goFlags)
	st.Webhook.AddFlags(goFlags)
	s.AddGoFlagSet(goFlags)
	st.Connect.AddFlags(s.Flags())
	// --kubeconfig is the aggregated API's flag and configures the whole process.
	st.API.AddFlags(s.Flags())
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	s.AddGoFlagSet(klogFlags)
	return s, st
}

// Load parses args over the variables (lookup; os.LookupEnv in production)
// into the settings, reporting every error at once. environ (os.Environ())
// holds the image variables, a family rather than flags: AGENTKUBE_IMAGE_*
// (pkg/runtimes). --help prints the table to help and returns pflag.ErrHelp.
func Load(args []string, lookup func(string) (string, bool), environ []string, help io.Writer) (*Settings, error) {
	s, st := NewSettings()
	if help != nil {
		s.Output = help
	}
	err := s.Parse(args, lookup)
	if err != nil {
		return nil, err
	}
	st.Manager.Images = runtimes.ImagesFromEnv(environ)
	getenv := func(k string) string { v, _ := lookup(k); return v }
	if err := st.Connect.Complete(getenv); err != nil {
		return nil, err
	}
	return st, nil
}

// Options are what a caller may supply instead of the defaults; cmd/agentkube-manager
// sets none of them. A test harness runs part of the process through the settings:
// Manager.Controllers (--controllers), Webhook.Port 0 (--webhook-port=0) and
// API.SecureServing.BindPort 0 (--secure-port=0) leave components out.
type Options struct {
	// Config replaces --kubeconfig, $KUBECONFIG and the in-cluster configuration.
	Config *rest.Config
	// Logger is the process's logger (default klog's).
	Logger *logr.Logger
}

// App is an assembled agentkube-manager, not yet started: Start runs it.
type App struct {
	*manager.Manager
	// Certificates is the certificate Watcher: the serving certificate of the
	// webhook and the aggregated API, and the agentlet CA.
	Certificates *certs.Watcher
	// Webhook is the admission webhook server; nil with --webhook-port=0.
	Webhook ctrlwebhook.Server
	// API is the aggregated API server; nil with --secure-port=0.
	API *apiserver.Server
	// Shells serves the platform's browser shells in managed mode (else nil).
	Shells *shellexec.Executor
}

// New assembles agentkube-manager from st.
func New(st *Settings, o Options) (*App, error) {
	logger := klog.NewKlogr()
	if o.Logger != nil {
		logger = *o.Logger
	}
	cfg := o.Config
	if cfg == nil {
		// --kubeconfig names a file; without it controller-runtime's order
		// applies ($KUBECONFIG, in-cluster, ~/.kube/config).
		var err error
		if st.API.Kubeconfig != "" {
			cfg, err = clientcmd.BuildConfigFromFlags("", st.API.Kubeconfig)
		} else {
			cfg, err = ctrl.GetConfig()
		}
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
	}
	// One certificate, from one Secret, serves the webhook and the aggregated API; the
	// leader rotates it and injects the CA into both registrations. The same Secret
	// holds the agentlet CA: the Agent controller issues every agentlet its
	// certificate from it, and every agentlet client here verifies against its bundle.
	certOpts := st.Certs
	certOpts.Namespace = st.Manager.Namespace
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	certOpts.SetDefaults()
	certificates := certs.NewWatcher(kube, certOpts.Namespace, certOpts.SecretName)
	mopts := st.Manager
	mopts.AgentletCA = certificates
	m, err := manager.New(cfg, mopts)
	if err != nil {
		return nil, err
	}
	a := &App{Manager: m, Certificates: certificates}
	if err := certs.AddWatcherToManager(m, certOpts, certificates); err != nil {
		return nil, err
	}
	webhookOpts := st.Webhook
	webhookOpts.Certificates = certificates
	if webhookOpts.Port != 0 {
		if a.Webhook, err = webhook.AddToManager(m, webhookOpts); err != nil {
			return nil, err
		}
	}

	// --secure-port=0 serves no aggregated API, as upstream's flag says.
	apiOpts := st.API
	if apiOpts.SecureServing.BindPort != 0 || apiOpts.SecureServing.Listener != nil {
		apiOpts.ClientConfig = m.GetConfig()
		// The rotating certificate, unless --tls-cert-file names one from elsewhere.
		if cert := apiOpts.SecureServing.ServerCert.CertKey; cert.CertFile == "" && cert.KeyFile == "" {
			apiOpts.ServingCert = certificates
		}
		apiOpts.Agents = agentregistry.FromClient(m.GetCache())
		apiOpts.AgentletBundle = agentletBundle(certificates)
		if a.API, err = apiOpts.NewServer(); err != nil {
			return nil, fmt.Errorf("aggregated API: %w", err)
		}
		if err := m.Add(a.API); err != nil {
			return nil, err
		}
	}

	connectOpts := st.Connect
	if connectOpts.Managed {
		if connectOpts.Logger.GetSink() == nil {
			connectOpts.Logger = logger.WithName("connect")
		}
		if connectOpts.Shells == nil {
			shells, err := shellexec.New(shellexec.Options{Config: m.GetConfig(), Log: logger.WithName("shell")})
			if err != nil {
				return nil, fmt.Errorf("shells: %w", err)
			}
			connectOpts.Shells = shells
		}
		a.Shells = connectOpts.Shells
		// Invocations from the platform stream their output, read from the
		// agentlet the same way the aggregated API's agents/log reads it.
		if connectOpts.RunOutput == nil {
			connectOpts.RunOutput = connect.AgentletOutput{
				Locator: &agentregistry.PodLocator{Client: kube,
					AgentletBundle: agentletBundle(certificates)},
			}
		}
		if err := connect.AddToManager(m, connectOpts); err != nil {
			return nil, err
		}
	}

	logger.Info("Assembled agentkube-manager",
		"namespace", mopts.Namespace, "leaderElection", mopts.LeaderElection,
		"metrics", addr(m.MetricsAddr), "probes", addr(m.ProbeAddr),
		"webhookPort", webhookOpts.Port, "apiPort", apiOpts.SecureServing.BindPort,
		"managed", connectOpts.Managed, "controllers", mopts.Controllers,
		"kubeAPIQPS", mopts.KubeAPIQPS, "kubeAPIBurst", mopts.KubeAPIBurst,
		"images", mopts.Images.String())
	return a, nil
}

// Main is the agentkube-manager command: Load, New, and Start until SIGTERM
// (leadership is released at once so a successor need not wait for the Lease
// to expire).
func Main(args []string, lookup func(string) (string, bool), environ []string) error {
	st, err := Load(args, lookup, environ, os.Stderr)
	if err != nil {
		return err
	}
	ctrl.SetLogger(klog.NewKlogr())
	a, err := New(st, Options{})
	if err != nil {
		return err
	}
	return a.Start(ctrl.SetupSignalHandler())
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
