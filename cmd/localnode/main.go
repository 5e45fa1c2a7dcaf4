//go:build linux

// Command localnode is a development Kubernetes node for machines without a
// container runtime: it registers a Node, runs the containers of pods bound to
// it as host processes through an image → binary map, gives each pod an IP in
// 127.0.0.0/8 and serves the kubelet API so kubectl exec, logs and attach work.
// See docs/localnode.md.
//
// Every flag can also be set through the environment as LOCALNODE_<FLAG>, the
// flag's name upper-cased with '-' as '_' (--image-map → LOCALNODE_IMAGE_MAP);
// a flag on the command line wins. --image takes several mappings from the
// environment separated by ';'.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/exo-in-go/exo/pkg/localnode"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "localnode:", err)
		os.Exit(1)
	}
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ";") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func run(args []string) error {
	fs := flag.NewFlagSet("localnode", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster (KUBECONFIG); in-cluster configuration when empty")
	nodeName := fs.String("node-name", "localnode", "name of the Node")
	imageMap := fs.String("image-map", "", "YAML or JSON file mapping images to host binaries (see docs/localnode.md)")
	var images listFlag
	fs.Var(&images, "image", "a mapping PATTERN=BINARY [ARG...], e.g. '*agentkube-agentlet*=/usr/local/bin/agentlet'; repeatable, checked before --image-map")
	stateDir := fs.String("state-dir", "", "directory for pod volumes, container roots and logs (default: <tmp>/localnode-<node name>)")
	podCIDR := fs.String("pod-cidr", localnode.DefaultPodCIDR, "prefix of 127.0.0.0/8 pod IPs come from")
	listen := fs.String("listen-address", "127.0.0.1:10250", "address of the kubelet API")
	certFile := fs.String("tls-cert-file", "", "kubelet API serving certificate")
	keyFile := fs.String("tls-private-key-file", "", "key of --tls-cert-file")
	caCertFile := fs.String("serving-ca-cert-file", "", "CA (trusted by kube-apiserver's --kubelet-certificate-authority) to issue the serving certificate from")
	caKeyFile := fs.String("serving-ca-key-file", "", "key of --serving-ca-cert-file")
	clientCAFile := fs.String("client-ca-file", "", "CA of kube-apiserver's kubelet client certificate (--kubelet-client-certificate)")
	authz := fs.String("authorization-mode", "Webhook", "Webhook (SubjectAccessReview) or AlwaysAllow")
	bind := fs.Bool("bind-unscheduled-pods", false, "bind pending pods without a node to this node (for clusters without kube-scheduler)")
	labels := fs.String("node-labels", "", "extra Node labels, k=v,k2=v2")
	taints := fs.String("register-with-taints", "", "Node taints, key=value:Effect,...")
	capacity := fs.String("capacity", "", "capacity overrides, e.g. cpu=4,memory=8Gi,pods=50")
	backoff := fs.Duration("restart-backoff", 10*time.Second, "first container restart delay (doubles on every crash)")
	maxBackoff := fs.Duration("max-restart-backoff", 5*time.Minute, "longest container restart delay")
	shutdownGrace := fs.Duration("shutdown-grace-period", 10*time.Second, "time pods get to stop when localnode exits")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")

	// LOCALNODE_<FLAG> in the environment sets a flag's default.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "LOCALNODE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if f.Name == "image" {
			for _, m := range strings.Split(v, ";") {
				if strings.TrimSpace(m) != "" {
					_ = f.Value.Set(strings.TrimSpace(m))
				}
			}
			return
		}
		if err := f.Value.Set(v); err != nil && envErr == nil {
			envErr = fmt.Errorf("%s: %w", name, err)
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	opts := localnode.Options{
		NodeName:            *nodeName,
		StateDir:            *stateDir,
		PodCIDR:             *podCIDR,
		ListenAddress:       *listen,
		Authorization:       *authz,
		BindUnscheduledPods: *bind,
		RestartBackoff:      *backoff,
		MaxRestartBackoff:   *maxBackoff,
		ShutdownGracePeriod: *shutdownGrace,
		Logger:              log,
	}
	var err error
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = *kubeconfig
	if opts.Config, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{}).ClientConfig(); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	for _, s := range images {
		m, err := localnode.ParseImageFlag(s)
		if err != nil {
			return fmt.Errorf("--image: %w", err)
		}
		opts.ImageMap.Images = append(opts.ImageMap.Images, m)
	}
	if *imageMap != "" {
		m, err := localnode.LoadImageMap(*imageMap)
		if err != nil {
			return err
		}
		opts.ImageMap.Images = append(opts.ImageMap.Images, m.Images...)
	}
	if len(opts.ImageMap.Images) == 0 {
		log.Warn("the image map is empty: every pod will fail with ErrImagePull (use --image or --image-map)")
	}
	read := func(path string) ([]byte, error) {
		if path == "" {
			return nil, nil
		}
		return os.ReadFile(path)
	}
	if opts.ServingCertPEM, err = read(*certFile); err != nil {
		return err
	}
	if opts.ServingKeyPEM, err = read(*keyFile); err != nil {
		return err
	}
	if opts.ServingCACertPEM, err = read(*caCertFile); err != nil {
		return err
	}
	if opts.ServingCAKeyPEM, err = read(*caKeyFile); err != nil {
		return err
	}
	if opts.ClientCAPEM, err = read(*clientCAFile); err != nil {
		return err
	}
	if (len(opts.ServingCertPEM) > 0) != (len(opts.ServingKeyPEM) > 0) {
		return errors.New("--tls-cert-file and --tls-private-key-file go together")
	}
	if (len(opts.ServingCACertPEM) > 0) != (len(opts.ServingCAKeyPEM) > 0) {
		return errors.New("--serving-ca-cert-file and --serving-ca-key-file go together")
	}
	if opts.Labels, err = parseMap(*labels); err != nil {
		return fmt.Errorf("--node-labels: %w", err)
	}
	if opts.Taints, err = parseTaints(*taints); err != nil {
		return fmt.Errorf("--register-with-taints: %w", err)
	}
	caps, err := parseMap(*capacity)
	if err != nil {
		return fmt.Errorf("--capacity: %w", err)
	}
	if len(caps) > 0 {
		opts.Capacity = corev1.ResourceList{}
		for k, v := range caps {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return fmt.Errorf("--capacity %s: %w", k, err)
			}
			opts.Capacity[corev1.ResourceName(k)] = q
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	n, err := localnode.New(opts)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		stop() // a second signal ends localnode at once; the shims still kill every pod process
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
