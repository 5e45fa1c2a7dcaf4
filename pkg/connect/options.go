package connect

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/exo-in-go/exo/pkg/cmd/options"
	"github.com/exo-in-go/exo/pkg/shellexec"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// DefaultPodSelector selects the pods the manager creates (the label every
// manager-created object carries); only those are part of the cluster view.
const DefaultPodSelector = "app.kubernetes.io/managed-by=agentkube-manager"

// Options configure the connector. OptionsFromEnv reads the AGENTKUBE_*
// variables; tests set fields directly. Zero durations take the defaults.
type Options struct {
	// Managed turns the connector on (AGENTKUBE_MANAGED).
	Managed bool
	// BaseURL is the platform's public URL (AGENTKUBE_BASE_URL); the tunnel
	// is at <base>/api/agentkube/connect, wss:// for https.
	BaseURL string
	// Token is the deployment token (AGENTKUBE_AUTH_TOKEN, from Secret
	// agentkube-auth key token). Never logged.
	Token string
	// ClusterID identifies this cluster to the platform (AGENTKUBE_CLUSTER_ID,
	// default <POD_NAMESPACE>/<HOSTNAME>).
	ClusterID string
	// Version is reported in hello.
	Version string

	// HeartbeatInterval is the application heartbeat cadence
	// (AGENTKUBE_HEARTBEAT_INTERVAL, default 10s); the platform may ask for
	// a shorter one in welcome.
	HeartbeatInterval time.Duration
	// DeltaDelay coalesces changes: a change is sent at most this long
	// after it reached the informer cache (default 100ms, at most 1s).
	DeltaDelay time.Duration
	// HandshakeTimeout bounds each handshake phase: dial + upgrade, then
	// hello → welcome (default 10s).
	HandshakeTimeout time.Duration
	// PingInterval is the WebSocket ping cadence (default 20s).
	PingInterval time.Duration
	// Backoff between connection attempts: full jitter over an exponential
	// ceiling from InitialBackoff (1s) to MaxBackoff (30s), reset after a
	// connection lived StableAfter (60s).
	InitialBackoff, MaxBackoff, StableAfter time.Duration
	// MaxFrameBytes is the platform's frame limit; snapshots and deltas are
	// chunked below it (default 1 MiB).
	MaxFrameBytes int64
	// PodSelector picks the pods of the view (default DefaultPodSelector).
	PodSelector labels.Selector
	// MaxConcurrentRequests bounds invoke_agent/ensure_pod handled at once
	// (default 64); more are answered "unavailable".
	MaxConcurrentRequests int

	// Logger defaults to the manager's logger named "connect".
	Logger logr.Logger

	// Shells serves the platform's browser shells (shell_open, shell_close)
	// with pods/exec; shell frames are ignored when nil.
	Shells *shellexec.Executor
	// RunOutput follows a run's output in its agentlet, so invoke_agent can
	// stream it to the platform; without it only the result's tail is sent.
	RunOutput RunOutput
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HeartbeatInterval, 10*time.Second)
	def(&o.DeltaDelay, 100*time.Millisecond)
	o.DeltaDelay = min(o.DeltaDelay, time.Second)
	def(&o.HandshakeTimeout, 10*time.Second)
	def(&o.PingInterval, tunnel.DefaultPingInterval)
	def(&o.InitialBackoff, time.Second)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.StableAfter, time.Minute)
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = tunnel.DefaultReadLimit
	}
	if o.PodSelector == nil {
		o.PodSelector = labels.SelectorFromSet(labels.Set{"app.kubernetes.io/managed-by": "agentkube-manager"})
	}
	if o.MaxConcurrentRequests <= 0 {
		o.MaxConcurrentRequests = 64
	}
	return o
}

func (o Options) validate() error {
	if o.Token == "" {
		return errors.New("--managed (AGENTKUBE_MANAGED=true) requires --auth-token (AGENTKUBE_AUTH_TOKEN: Secret agentkube-auth, key token)")
	}
	// No default: the platform is whatever exo-app the user runs, never a
	// hosted service the cluster would dial unasked.
	if o.BaseURL == "" {
		return errors.New("--managed (AGENTKUBE_MANAGED=true) requires --base-url (AGENTKUBE_BASE_URL), the platform's public URL, e.g. https://exo.example.com")
	}
	if _, err := tunnel.ConnectURL(o.BaseURL); err != nil {
		return fmt.Errorf("--base-url (AGENTKUBE_BASE_URL): %w", err)
	}
	return nil
}

// EnvPrefix starts the variables of the connector's settings; they are part
// of agentkube-manager's table (pkg/manager/app).
const EnvPrefix = "AGENTKUBE_"

// AddFlags registers the connector's settings: --managed, --base-url,
// --auth-token, --cluster-id and --heartbeat-interval (AGENTKUBE_MANAGED, …).
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Managed, "managed", o.Managed, "connect to the Exo platform (managed mode) with --auth-token")
	fs.StringVar(&o.BaseURL, "base-url", o.BaseURL, "the platform's public URL, required in managed mode; the tunnel is at <base>/api/agentkube/connect")
	fs.StringVar(&o.Token, "auth-token", o.Token, "the deployment token (Secret agentkube-auth, key token); prefer the variable, which ps does not show")
	fs.StringVar(&o.ClusterID, "cluster-id", o.ClusterID, "identifies this cluster to the platform (default <POD_NAMESPACE>/<HOSTNAME>)")
	fs.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", o.HeartbeatInterval, "application heartbeat cadence (default 10s); the platform may ask for a shorter one")
}

// Complete defaults the cluster ID from HOSTNAME and POD_NAMESPACE (through
// getenv) and checks a managed connector's settings.
func (o *Options) Complete(getenv func(string) string) error {
	if o.ClusterID == "" {
		host := getenv("HOSTNAME")
		if host == "" {
			host, _ = os.Hostname()
		}
		o.ClusterID = host
		if ns := getenv("POD_NAMESPACE"); ns != "" {
			o.ClusterID = ns + "/" + host
		}
	}
	if o.HeartbeatInterval < 0 {
		return fmt.Errorf("AGENTKUBE_HEARTBEAT_INTERVAL: must be a positive duration, got %s", o.HeartbeatInterval)
	}
	if o.Managed {
		return o.withDefaults().validate()
	}
	return nil
}

// OptionsFromEnv reads the connector's settings from their variables only:
// AGENTKUBE_MANAGED, AGENTKUBE_BASE_URL, AGENTKUBE_AUTH_TOKEN,
// AGENTKUBE_CLUSTER_ID and AGENTKUBE_HEARTBEAT_INTERVAL.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	var o Options
	s := options.New("connect", EnvPrefix)
	o.AddFlags(s.Flags())
	lookup := func(k string) (string, bool) { v := getenv(k); return v, v != "" }
	if err := s.Parse(nil, lookup); err != nil {
		return o, err
	}
	return o, o.Complete(getenv)
}
