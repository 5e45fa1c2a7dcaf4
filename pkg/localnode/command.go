//go:build linux

package localnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/exo-in-go/exo/pkg/cmd/options"
)

// EnvPrefix starts the name of every setting's variable: --image-map ⇔
// LOCALNODE_IMAGE_MAP.
const EnvPrefix = "LOCALNODE_"

// Settings are the command's settings (docs/localnode.md, Flags): the table
// cmd/localnode parses, turned into Options by Options.
type Settings struct {
	Kubeconfig          string
	NodeName            string
	ImageMapFile        string
	Images              []string
	StateDir            string
	PodCIDR             string
	ListenAddress       string
	TLSCertFile         string
	TLSKeyFile          string
	ServingCACertFile   string
	ServingCAKeyFile    string
	ClientCAFile        string
	AuthorizationMode   string
	BindUnscheduledPods bool
	NodeLabels          string
	Taints              string
	Capacity            string
	RestartBackoff      time.Duration
	MaxRestartBackoff   time.Duration
	ShutdownGracePeriod time.Duration
	LogLevel            string
}

// AddSettings registers localnode's table on s; kubeconfig is the default of
// --kubeconfig ($KUBECONFIG).
func AddSettings(s *options.Set, kubeconfig string) *Settings {
	st := &Settings{}
	fs := s.Flags()
	fs.StringVar(&st.Kubeconfig, "kubeconfig", kubeconfig, "kubeconfig of the cluster (default $KUBECONFIG); in-cluster configuration when empty")
	fs.StringVar(&st.NodeName, "node-name", "localnode", "name of the Node")
	fs.StringArrayVar(&st.Images, "image", nil, "a mapping PATTERN=BINARY [ARG...], e.g. '*agentkube-agentlet*=/usr/local/bin/agentlet'; repeatable, checked before --image-map; the variable holds several separated by ';', before those of the command line")
	s.ListVariable("image", ";")
	fs.StringVar(&st.ImageMapFile, "image-map", "", "YAML or JSON file mapping images to host binaries (see docs/localnode.md)")
	fs.StringVar(&st.StateDir, "state-dir", "", "directory for pod volumes, container roots and logs (default: <tmp>/localnode-<node name>)")
	fs.StringVar(&st.PodCIDR, "pod-cidr", DefaultPodCIDR, "prefix of 127.0.0.0/8 pod IPs come from")
	fs.StringVar(&st.ListenAddress, "listen-address", "127.0.0.1:10250", "address of the kubelet API; port 0 picks a free one")
	fs.StringVar(&st.TLSCertFile, "tls-cert-file", "", "kubelet API serving certificate")
	fs.StringVar(&st.TLSKeyFile, "tls-private-key-file", "", "key of --tls-cert-file")
	fs.StringVar(&st.ServingCACertFile, "serving-ca-cert-file", "", "CA (trusted by kube-apiserver's --kubelet-certificate-authority) to issue the serving certificate from")
	fs.StringVar(&st.ServingCAKeyFile, "serving-ca-key-file", "", "key of --serving-ca-cert-file")
	fs.StringVar(&st.ClientCAFile, "client-ca-file", "", "CA of kube-apiserver's kubelet client certificate (--kubelet-client-certificate)")
	fs.StringVar(&st.AuthorizationMode, "authorization-mode", "Webhook", "Webhook (SubjectAccessReview) or AlwaysAllow")
	fs.BoolVar(&st.BindUnscheduledPods, "bind-unscheduled-pods", false, "bind pending pods without a node to this node (for clusters without kube-scheduler)")
	fs.StringVar(&st.NodeLabels, "node-labels", "", "extra Node labels, k=v,k2=v2")
	fs.StringVar(&st.Taints, "register-with-taints", "", "Node taints, key=value:Effect,...")
	fs.StringVar(&st.Capacity, "capacity", "", "capacity overrides, e.g. cpu=4,memory=8Gi,pods=50 (default: CPUs, memory, disk of the state dir, 110 pods)")
	fs.DurationVar(&st.RestartBackoff, "restart-backoff", 10*time.Second, "first container restart delay (doubles on every crash)")
	fs.DurationVar(&st.MaxRestartBackoff, "max-restart-backoff", 5*time.Minute, "longest container restart delay")
	fs.DurationVar(&st.ShutdownGracePeriod, "shutdown-grace-period", 10*time.Second, "time pods get to stop when localnode exits")
	fs.StringVar(&st.LogLevel, "log-level", "info", "debug, info, warn or error")
	return st
}

// Options turns the settings into the Options of New, reading the files
// they name; every problem is reported at once. The logger writes to logw.
func (st *Settings) Options(logw io.Writer) (Options, error) {
	var errs []error
	var level slog.Level
	if err := level.UnmarshalText([]byte(st.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level}))
	opts := Options{
		NodeName:            st.NodeName,
		StateDir:            st.StateDir,
		PodCIDR:             st.PodCIDR,
		ListenAddress:       st.ListenAddress,
		Authorization:       st.AuthorizationMode,
		BindUnscheduledPods: st.BindUnscheduledPods,
		RestartBackoff:      st.RestartBackoff,
		MaxRestartBackoff:   st.MaxRestartBackoff,
		ShutdownGracePeriod: st.ShutdownGracePeriod,
		Logger:              log,
	}
	var err error
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = st.Kubeconfig
	if opts.Config, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{}).ClientConfig(); err != nil {
		errs = append(errs, fmt.Errorf("kubeconfig: %w", err))
	}
	for _, s := range st.Images {
		m, err := ParseImageFlag(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--image: %w", err))
			continue
		}
		opts.ImageMap.Images = append(opts.ImageMap.Images, m)
	}
	if st.ImageMapFile != "" {
		m, err := LoadImageMap(st.ImageMapFile)
		if err != nil {
			errs = append(errs, err)
		}
		opts.ImageMap.Images = append(opts.ImageMap.Images, m.Images...)
	}
	read := func(flag, path string) []byte {
		if path == "" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", flag, err))
		}
		return b
	}
	opts.ServingCertPEM = read("tls-cert-file", st.TLSCertFile)
	opts.ServingKeyPEM = read("tls-private-key-file", st.TLSKeyFile)
	opts.ServingCACertPEM = read("serving-ca-cert-file", st.ServingCACertFile)
	opts.ServingCAKeyPEM = read("serving-ca-key-file", st.ServingCAKeyFile)
	opts.ClientCAPEM = read("client-ca-file", st.ClientCAFile)
	if (st.TLSCertFile != "") != (st.TLSKeyFile != "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-private-key-file go together"))
	}
	if (st.ServingCACertFile != "") != (st.ServingCAKeyFile != "") {
		errs = append(errs, errors.New("--serving-ca-cert-file and --serving-ca-key-file go together"))
	}
	if opts.Labels, err = parseMap(st.NodeLabels); err != nil {
		errs = append(errs, fmt.Errorf("--node-labels: %w", err))
	}
	if opts.Taints, err = parseTaints(st.Taints); err != nil {
		errs = append(errs, fmt.Errorf("--register-with-taints: %w", err))
	}
	caps, err := parseMap(st.Capacity)
	if err != nil {
		errs = append(errs, fmt.Errorf("--capacity: %w", err))
	}
	if len(caps) > 0 {
		opts.Capacity = corev1.ResourceList{}
		for k, v := range caps {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("--capacity %s: %w", k, err))
				continue
			}
			opts.Capacity[corev1.ResourceName(k)] = q
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	if len(opts.ImageMap.Images) == 0 {
		log.Warn("the image map is empty: every pod will fail with ErrImagePull (use --image or --image-map)")
	}
	return opts, nil
}

// Main is the localnode command: it parses args over the LOCALNODE_*
// variables (lookup, os.LookupEnv in production), assembles the node with New
// and runs it until SIGTERM or SIGINT; a second signal ends it at once (the
// shims still kill every pod process). Logs and --help go to stderr.
func Main(args []string, lookup func(string) (string, bool), stderr io.Writer) error {
	s := options.New("localnode", EnvPrefix)
	s.Output = stderr
	s.Description = "localnode: a development Kubernetes node that runs pods as host processes (docs/localnode.md)."
	kubeconfig, _ := lookup("KUBECONFIG")
	st := AddSettings(s, kubeconfig)
	parseErr := s.Parse(args, lookup)
	if errors.Is(parseErr, pflag.ErrHelp) {
		return parseErr
	}
	opts, err := st.Options(stderr)
	if err := errors.Join(parseErr, err); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	n, err := New(opts)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		stop()
	}()
	return n.Run(ctx)
}

func parseMap(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

func parseTaints(s string) ([]corev1.Taint, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []corev1.Taint
	for _, t := range strings.Split(s, ",") {
		kv, effect, ok := strings.Cut(strings.TrimSpace(t), ":")
		if !ok {
			return nil, fmt.Errorf("%q: want key[=value]:Effect", t)
		}
		k, v, _ := strings.Cut(kv, "=")
		switch corev1.TaintEffect(effect) {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("%q: effect must be NoSchedule, PreferNoSchedule or NoExecute", t)
		}
		out = append(out, corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)})
	}
	return out, nil
}
