// Package manager assembles the agentkube-manager: a controller-runtime
// manager with every agentkube controller, the Prometheus endpoint, health
// probes whose /readyz reflects real readiness, and leader election on a
// Lease. cmd/agentkube-manager is a thin main around it; tests start it
// in-process against a real kube-apiserver.
package manager

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmanager "sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/pkg/controllers/agentrun"
	"github.com/exo-in-go/exo/pkg/controllers/claw"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
	"github.com/exo-in-go/exo/pkg/controllers/index"
	"github.com/exo-in-go/exo/pkg/controllers/llmgateway"
	"github.com/exo-in-go/exo/pkg/controllers/mcp"
	"github.com/exo-in-go/exo/pkg/controllers/schedule"
	"github.com/exo-in-go/exo/pkg/controllers/tool"
	"github.com/exo-in-go/exo/pkg/metrics"
)

// Manager is a configured, not yet started agentkube-manager.
type Manager struct {
	ctrl.Manager

	// MetricsAddr and ProbeAddr are the bound addresses (useful with ":0").
	MetricsAddr net.Addr
	ProbeAddr   net.Addr

	readiness *readiness
}

// Scheme returns a scheme with the built-in and agentkube.io types.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := agentkubev1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// New builds the manager and registers every controller.
func New(restConfig *rest.Config, o Options) (*Manager, error) {
	if err := validControllers(o.Controllers); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(restConfig)
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	if cfg.UserAgent == "" {
		cfg.UserAgent = "agentkube-manager"
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	metrics.Register()
	var clk clock.WithDelayedExecution = clock.RealClock{}
	if o.Clock != nil {
		clk = o.Clock
	}

	// The listeners are bound here, not in Start, so a taken port fails at
	// once and callers can learn the addresses of ":0".
	m := &Manager{readiness: &readiness{}}
	var servers []*ctrlmanager.Server
	if o.MetricsBindAddress != "0" && o.MetricsBindAddress != "" {
		ln, err := net.Listen("tcp", o.MetricsBindAddress)
		if err != nil {
			return nil, fmt.Errorf("listen for metrics on %s: %w", o.MetricsBindAddress, err)
		}
		tl := m.readiness.track("metrics", ln)
		m.MetricsAddr = ln.Addr()
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
		servers = append(servers, &ctrlmanager.Server{Name: "metrics", Listener: tl, Server: newHTTPServer(mux)})
	}
	var probeMux *http.ServeMux
	if o.HealthProbeBindAddress != "0" && o.HealthProbeBindAddress != "" {
		ln, err := net.Listen("tcp", o.HealthProbeBindAddress)
		if err != nil {
			closeServers(servers)
			return nil, fmt.Errorf("listen for health probes on %s: %w", o.HealthProbeBindAddress, err)
		}
		tl := m.readiness.track("health probes", ln)
		m.ProbeAddr = ln.Addr()
		probeMux = http.NewServeMux()
		servers = append(servers, &ctrlmanager.Server{Name: "health probes", Listener: tl, Server: newHTTPServer(probeMux)})
	}

	managed := labels.SelectorFromSet(labels.Set{ctrlutil.LabelManagedBy: ctrlutil.ManagedByValue})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		// Our own servers above; controller-runtime's are off.
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.Namespace,
		LeaderElectionResourceLock:    "leases",
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 ptr.To(o.LeaseDuration),
		RenewDeadline:                 ptr.To(o.RenewDeadline),
		RetryPeriod:                   ptr.To(o.RetryPeriod),
		GracefulShutdownTimeout:       ptr.To(o.GracefulShutdownTimeout),
		Cache: cache.Options{
			// Only what the manager created: never every pod, Deployment,
			// Service or Job of the cluster in memory.
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}:        {Label: managed},
				&appsv1.Deployment{}: {Label: managed},
				&corev1.Service{}:    {Label: managed},
				&batchv1.Job{}:       {Label: managed},
			},
		},
		Controller: config.Controller{
			// Tests run several managers in one process.
			SkipNameValidation: ptr.To(true),
			// Informers start and sync before leadership, so a standby is
			// ready to take over at once and /readyz means the same on
			// every replica.
			EnableWarmup: ptr.To(true),
		},
	})
	if err != nil {
		closeServers(servers)
		return nil, fmt.Errorf("create manager: %w", err)
	}
	m.Manager = mgr
	for _, s := range servers {
		if err := mgr.Add(s); err != nil {
			closeServers(servers)
			return nil, err
		}
	}
	if probeMux != nil {
		m.readiness.cache = mgr.GetCache()
		ready := &healthz.Handler{Checks: map[string]healthz.Checker{"informers": m.readiness.informersSynced, "endpoints": m.readiness.endpointsServing}}
		m.readiness.handler = ready
		live := &healthz.Handler{Checks: map[string]healthz.Checker{"ping": healthz.Ping}}
		probeMux.Handle("/readyz", unavailableOnFailure(http.StripPrefix("/readyz", ready)))
		probeMux.Handle("/readyz/", unavailableOnFailure(http.StripPrefix("/readyz", ready)))
		probeMux.Handle("/healthz", http.StripPrefix("/healthz", live))
		probeMux.Handle("/healthz/", http.StripPrefix("/healthz", live))
	}

	ctx := context.Background()
	if err := index.Register(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	c, reader := mgr.GetClient(), mgr.GetAPIReader()
	var agentletBundle func() []byte
	if o.AgentletCA != nil {
		agentletBundle = func() []byte { _, bundle := o.AgentletCA.AgentletCA(); return bundle }
	}
	setups := map[string]interface{ SetupWithManager(ctrl.Manager) error }{
		agent.Name: &agent.Reconciler{Client: c, APIReader: reader, Scheme: scheme, Recorder: mgr.GetEventRecorder(agent.Name),
			Images: o.Images, AgentletCA: o.AgentletCA, MaxConcurrentReconciles: o.MaxConcurrentReconciles},
		agentrun.Name: &agentrun.Reconciler{Client: c, APIReader: reader, Scheme: scheme, Recorder: mgr.GetEventRecorder(agentrun.Name),
			Addresser: o.AgentletAddresser, AgentletBundle: agentletBundle, PollInterval: o.RunPollInterval, MaxConcurrentReconciles: o.MaxConcurrentReconciles},
		schedule.Name: &schedule.Reconciler{Client: c, Scheme: scheme, Recorder: mgr.GetEventRecorder(schedule.Name),
			Clock: clk, StartingDeadline: o.ScheduleStartingDeadline},
		tool.Name:       &tool.Reconciler{Client: c, APIReader: reader, Scheme: scheme, Recorder: mgr.GetEventRecorder(tool.Name), Images: o.Images, Clock: clk},
		mcp.Name:        &mcp.Reconciler{Client: c, Scheme: scheme, Recorder: mgr.GetEventRecorder(mcp.Name), Images: o.Images},
		llmgateway.Name: &llmgateway.Reconciler{Client: c, Scheme: scheme, Recorder: mgr.GetEventRecorder(llmgateway.Name), Images: o.Images},
		claw.Name:       &claw.Reconciler{Client: c, Scheme: scheme, Recorder: mgr.GetEventRecorder(claw.Name), Images: o.Images},
	}
	for _, name := range ControllerNames {
		if !ControllerEnabled(o.Controllers, name) {
			continue
		}
		s := setups[name]
		if err := s.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up %T: %w", s, err)
		}
	}
	return m, nil
}

// AddReadyzCheck adds a check to /readyz, for servers that other packages
// add to this process (webhook, aggregated API). Call it before Start. With
// the probes disabled (--health-probe-bind-address=0) there is nothing to add
// to.
func (m *Manager) AddReadyzCheck(name string, check healthz.Checker) error {
	if m.readiness.handler == nil {
		return nil
	}
	m.readiness.handler.Checks[name] = check
	return nil
}

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

func closeServers(servers []*ctrlmanager.Server) {
	for _, s := range servers {
		_ = s.Listener.Close()
	}
}

// unavailableOnFailure answers a failed readiness check with 503 Service
// Unavailable, the conventional "not ready" status, instead of healthz's 500.
func unavailableOnFailure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&statusRewriter{ResponseWriter: w}, r)
	})
}

type statusRewriter struct{ http.ResponseWriter }

func (s *statusRewriter) WriteHeader(code int) {
	if code == http.StatusInternalServerError {
		code = http.StatusServiceUnavailable
	}
	s.ResponseWriter.WriteHeader(code)
}
