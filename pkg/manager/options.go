package manager

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/pkg/controllers/agentrun"
	"github.com/exo-in-go/exo/pkg/controllers/claw"
	"github.com/exo-in-go/exo/pkg/controllers/llmgateway"
	"github.com/exo-in-go/exo/pkg/controllers/mcp"
	"github.com/exo-in-go/exo/pkg/controllers/schedule"
	"github.com/exo-in-go/exo/pkg/controllers/tool"
	"github.com/exo-in-go/exo/pkg/runtimes"
	"k8s.io/utils/clock"
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
	// Controllers are the controllers to run, as kube-controller-manager's
	// --controllers: "*" all, "name" one, "-name" all but that one (names
	// in ControllerNames); none for a manager that only serves.
	Controllers []string

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

// DefaultOptions are the production defaults, before the AGENTKUBE_*
// variables and flags of pkg/manager/app.
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
		Controllers:              []string{"*"},
	}
}

// BindFlags registers the manager's flags on fs, defaulting to o's values.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "namespace the manager runs in and keeps its leader Lease in")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "address of the Prometheus /metrics endpoint; 0 disables it")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "address of /healthz and /readyz; 0 disables them")
	fs.BoolVar(&o.LeaderElection, "leader-elect", o.LeaderElection, "elect a leader through a Lease so that one replica reconciles")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", o.LeaderElectionID, "name of the leader election Lease")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", o.LeaseDuration, "how long a non-leader waits before taking over an unrenewed Lease")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", o.RenewDeadline, "how long the leader retries renewing before giving up leadership")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", o.RetryPeriod, "interval between leader election attempts")
	fs.Var((*float32Value)(&o.KubeAPIQPS), "kube-api-qps", "queries per second to kube-apiserver")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "burst of queries to kube-apiserver")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles, "parallel reconciles of the Agent and AgentRun controllers")
	fs.DurationVar(&o.RunPollInterval, "run-poll-interval", o.RunPollInterval, "how often a run in progress is checked in its agentlet")
	fs.DurationVar(&o.ScheduleStartingDeadline, "schedule-starting-deadline", o.ScheduleStartingDeadline, "how late a scheduled run may still start; older occurrences are skipped")
	fs.Func("controllers", "comma-separated controllers to run: * for all, name for one, -name to leave one out (of "+strings.Join(ControllerNames, ", ")+"); empty for none (default "+strings.Join(o.Controllers, ",")+")", func(s string) error {
		list := []string{}
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				list = append(list, v)
			}
		}
		if err := validControllers(list); err != nil {
			return err
		}
		o.Controllers = list
		return nil
	})
	fs.DurationVar(&o.GracefulShutdownTimeout, "graceful-shutdown-timeout", o.GracefulShutdownTimeout, "how long stopping waits for work in flight")
}

// ControllerNames are the controllers of --controllers, in the order they
// are set up.
var ControllerNames = []string{agent.Name, agentrun.Name, schedule.Name, tool.Name, mcp.Name, llmgateway.Name, claw.Name}

// ControllerEnabled reports whether the controller name runs under
// --controllers=list: named, or "*" and not "-name".
func ControllerEnabled(list []string, name string) bool {
	if slices.Contains(list, "-"+name) {
		return false
	}
	return slices.Contains(list, name) || slices.Contains(list, "*")
}

func validControllers(list []string) error {
	for _, v := range list {
		if n := strings.TrimPrefix(v, "-"); v != "*" && !slices.Contains(ControllerNames, n) {
			return fmt.Errorf("unknown controller %q (known: %s)", n, strings.Join(ControllerNames, ", "))
		}
	}
	return nil
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
