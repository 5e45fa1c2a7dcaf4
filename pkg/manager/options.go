package manager

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/runtimes"
	"k8s.io/utils/clock"
)

// Environment variables read by the manager (flags win over them).
const (
	EnvNamespace      = "AGENTKUBE_NAMESPACE"
	EnvMetricsAddress = "AGENTKUBE_METRICS_BIND_ADDRESS"
	EnvProbeAddress   = "AGENTKUBE_HEALTH_PROBE_BIND_ADDRESS"
	EnvLeaderElect    = "AGENTKUBE_LEADER_ELECT"
	EnvKubeAPIQPS     = "AGENTKUBE_KUBE_API_QPS"
	EnvKubeAPIBurst   = "AGENTKUBE_KUBE_API_BURST"
)

// Options configure the manager.
type Options struct {
	// Namespace is where the manager runs and keeps its Lease.
	Namespace string
	// MetricsBindAddress serves /metrics; "0" disables it.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; "0" disables it.
	HealthProbeBindAddress string

	// LeaderElection makes only one replica reconcile, holding a Lease.
	LeaderElection   bool
	LeaderElectionID string
	LeaseDuration    time.Duration
	RenewDeadline    time.Duration
	RetryPeriod      time.Duration

	// KubeAPIQPS and KubeAPIBurst rate-limit the manager's API client.
	KubeAPIQPS   float32
	KubeAPIBurst int

	// Images resolves every image the manager launches.
	Images runtimes.Images

	// MaxConcurrentReconciles of the Agent and AgentRun controllers.
	MaxConcurrentReconciles int
	// RunPollInterval is how often a run in progress is checked.
	RunPollInterval time.Duration
	// ScheduleStartingDeadline bounds how late a scheduled run may start.
	ScheduleStartingDeadline time.Duration

	// Clock drives schedules and Tool idle timeouts; tests inject a fake
	// one. The real clock when nil. Run timeouts always use the real clock:
	// the agentlet enforces them in real time.
	Clock clock.WithDelayedExecution
	// AgentletAddresser finds the agentlet of an Agent pod (pod IP and the
	// "agentlet" port when nil).
	AgentletAddresser endpoint.Addresser
	// AgentletCA issues the agentlets' certificates and is the trust bundle
	// the AgentRun controller verifies them with (a certs.Watcher). Nil:
	// agentlets serve plain HTTP (tests of other things, and a manager
	// without certificates).
	AgentletCA certs.AgentletAuthority
	// GracefulShutdownTimeout bounds how long stopping waits for runnables.
	GracefulShutdownTimeout time.Duration
}

// DefaultOptions are the production defaults, before env and flags.
func DefaultOptions() Options {
	return Options{
		Namespace:                "agentkube-system",
		MetricsBindAddress:       ":8080",
		HealthProbeBindAddress:   ":8081",
		LeaderElection:           true,
		LeaderElectionID:         "agentkube-manager",
		LeaseDuration:            15 * time.Second,
		RenewDeadline:            10 * time.Second,
		RetryPeriod:              2 * time.Second,
		KubeAPIQPS:               50,
		KubeAPIBurst:             100,
		MaxConcurrentReconciles:  4,
		RunPollInterval:          10 * time.Second,
		ScheduleStartingDeadline: 5 * time.Minute,
		GracefulShutdownTimeout:  30 * time.Second,
	}
}

// ApplyEnv reads the AGENTKUBE_* variables over o (lookup is os.LookupEnv
// in production; environ is os.Environ() for the image overrides).
func (o *Options) ApplyEnv(lookup func(string) (string, bool), environ []string) error {
	o.Images = runtimes.ImagesFromEnv(environ)
	if v, ok := lookup(EnvNamespace); ok && v != "" {
		o.Namespace = v
	}
	if v, ok := lookup(EnvMetricsAddress); ok && v != "" {
		o.MetricsBindAddress = v
	}
	if v, ok := lookup(EnvProbeAddress); ok && v != "" {
		o.HealthProbeBindAddress = v
	}
	if v, ok := lookup(EnvLeaderElect); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvLeaderElect, err)
		}
		o.LeaderElection = b
	}
	if v, ok := lookup(EnvKubeAPIQPS); ok && v != "" {
		f, err := strconv.ParseFloat(v, 32)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvKubeAPIQPS, err)
		}
		o.KubeAPIQPS = float32(f)
	}
	if v, ok := lookup(EnvKubeAPIBurst); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvKubeAPIBurst, err)
		}
		o.KubeAPIBurst = n
	}
	return nil
}

// BindFlags registers the manager's flags on fs, defaulting to o's values.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "namespace the manager runs in and keeps its leader Lease in ("+EnvNamespace+")")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "address of the Prometheus /metrics endpoint; 0 disables it ("+EnvMetricsAddress+")")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "address of /healthz and /readyz; 0 disables them ("+EnvProbeAddress+")")
	fs.BoolVar(&o.LeaderElection, "leader-elect", o.LeaderElection, "elect a leader through a Lease so that one replica reconciles ("+EnvLeaderElect+")")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", o.LeaderElectionID, "name of the leader election Lease")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", o.LeaseDuration, "how long a non-leader waits before taking over an unrenewed Lease")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", o.RenewDeadline, "how long the leader retries renewing before giving up leadership")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", o.RetryPeriod, "interval between leader election attempts")
	fs.Var((*float32Value)(&o.KubeAPIQPS), "kube-api-qps", "queries per second to kube-apiserver ("+EnvKubeAPIQPS+")")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "burst of queries to kube-apiserver ("+EnvKubeAPIBurst+")")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles, "parallel reconciles of the Agent and AgentRun controllers")
	fs.DurationVar(&o.RunPollInterval, "run-poll-interval", o.RunPollInterval, "how often a run in progress is checked in its agentlet")
	fs.DurationVar(&o.ScheduleStartingDeadline, "schedule-starting-deadline", o.ScheduleStartingDeadline, "how late a scheduled run may still start; older occurrences are skipped")
	fs.DurationVar(&o.GracefulShutdownTimeout, "graceful-shutdown-timeout", o.GracefulShutdownTimeout, "how long stopping waits for work in flight")
}

// float32Value is a flag.Value for the client's float32 QPS.
type float32Value float32

func (f *float32Value) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 32) }

func (f *float32Value) Set(s string) error {
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		return err
	}
	*f = float32Value(v)
	return nil
}

// FromEnvironment is DefaultOptions with the process environment applied.
func FromEnvironment() (Options, error) {
	o := DefaultOptions()
	return o, o.ApplyEnv(os.LookupEnv, os.Environ())
}
