//go:build linux

// Package localnode is a development Kubernetes node for machines without a
// container runtime. It registers a Node, runs the containers of the pods bound
// to it as host processes (an image → binary map says which binary stands in
// for which image), gives each pod an IP in 127.0.0.0/8, keeps pod status true,
// and serves the kubelet API over TLS so kube-apiserver's pods/exec, pods/log
// and pods/attach (kubectl exec -it, kubectl logs -f) work. The kubelet API,
// node registration, lease and pod sync come from virtual-kubelet.
//
// Every process runs under a small supervisor (see internal/shim) so that
// deleting a pod ends all of its processes and none outlives localnode, however
// localnode ends.
//
// See docs/localnode.md.
package localnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"

	"github.com/exo-in-go/exo/pkg/certs"
	_ "github.com/exo-in-go/exo/pkg/localnode/internal/shim" // re-exec hook
)

// Options configure a Node.
type Options struct {
	// Config reaches kube-apiserver. The node needs to manage its Node and
	// Lease, pods and their status, events, bindings (BindUnscheduledPods),
	// service account tokens, and to read Secrets and ConfigMaps; it creates
	// TokenReviews and SubjectAccessReviews to authorize kubelet API callers.
	Config *rest.Config
	// NodeName is the Node's name; "localnode" when empty.
	NodeName string
	// ImageMap says which host binary runs for which image.
	ImageMap ImageMap
	// StateDir keeps pod directories (volumes, container roots, logs);
	// <os temp dir>/localnode-<node name> when empty.
	StateDir string
	// PodCIDR is where pod IPs come from (inside 127.0.0.0/8); DefaultPodCIDR
	// when empty.
	PodCIDR string
	// IPLockDir holds the machine-wide locks of pod IPs in use; <os temp
	// dir>/localnode-ip-locks when empty.
	IPLockDir string
	// ListenAddress is the kubelet API's address; 127.0.0.1:10250 when empty.
	// A port of 0 picks a free one (see Node.Port). The Node's InternalIP is
	// always 127.0.0.1, where kube-apiserver dials it.
	ListenAddress string
	// ServingCertPEM and ServingKeyPEM are the kubelet API's certificate. Or
	// give ServingCACertPEM and ServingCAKeyPEM, a CA that kube-apiserver
	// trusts for kubelets (--kubelet-certificate-authority), to issue one for
	// 127.0.0.1. With neither, a self-signed certificate is made, which only a
	// kube-apiserver without --kubelet-certificate-authority accepts.
	ServingCertPEM, ServingKeyPEM     []byte
	ServingCACertPEM, ServingCAKeyPEM []byte
	// ClientCAPEM verifies client certificates on the kubelet API (the CA of
	// kube-apiserver's --kubelet-client-certificate). Bearer tokens are
	// checked with TokenReview. Anonymous requests are refused.
	ClientCAPEM []byte
	// Authorization is "Webhook" (default: SubjectAccessReview for nodes/proxy
	// and friends, as a kubelet with --authorization-mode=Webhook) or
	// "AlwaysAllow" (any authenticated caller).
	Authorization string
	// BindUnscheduledPods binds pending pods that have no node to this node,
	// for clusters without kube-scheduler.
	BindUnscheduledPods bool
	// Labels are added to the Node's labels; Taints set on its spec.
	Labels map[string]string
	Taints []corev1.Taint
	// Capacity overrides the Node's capacity (CPU, memory, pods...); the
	// machine's CPUs and memory, ephemeral storage of the state dir and 110
	// pods otherwise.
	Capacity corev1.ResourceList
	// RestartBackoff and MaxRestartBackoff pace container restarts (kubelet:
	// 10s doubling up to 5m, the defaults).
	RestartBackoff, MaxRestartBackoff time.Duration
	// MaxLogBytes is the size at which a container's log file is rotated
	// (10 MiB when 0).
	MaxLogBytes int64
	// ShutdownGracePeriod bounds how long localnode waits for pods to stop
	// when it exits (SIGTERM, then SIGKILL); 10s when 0.
	ShutdownGracePeriod time.Duration
	// Logger receives localnode's logs; discarded when nil.
	Logger *slog.Logger
}

// Node is a running (or ready to run) localnode.
type Node struct {
	opts     Options
	log      *slog.Logger
	client   kubernetes.Interface
	ipam     *ipam
	provider *provider
	stateDir string

	apiHost, apiPort string
	apiCA            []byte
	allocatable      corev1.ResourceList

	listener  net.Listener
	tlsConfig *tls.Config
	auth      nodeutil.Auth

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder

	ctx    context.Context // ends when localnode starts shutting down
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{}
	done   chan struct{}
	err    error
}

// New validates opts, binds the kubelet API's port and returns a Node to Run.
func New(opts Options) (*Node, error) {
	if opts.Config == nil {
		return nil, errors.New("localnode: Options.Config is required")
	}
	if opts.NodeName == "" {
		opts.NodeName = "localnode"
	}
	if opts.PodCIDR == "" {
		opts.PodCIDR = DefaultPodCIDR
	}
	if opts.ListenAddress == "" {
		opts.ListenAddress = "127.0.0.1:10250"
	}
	if opts.IPLockDir == "" {
		opts.IPLockDir = filepath.Join(os.TempDir(), "localnode-ip-locks")
	}
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(os.TempDir(), "localnode-"+opts.NodeName)
	}
	if opts.RestartBackoff <= 0 {
		opts.RestartBackoff = 10 * time.Second
	}
	if opts.MaxRestartBackoff <= 0 {
		opts.MaxRestartBackoff = 5 * time.Minute
	}
	if opts.MaxRestartBackoff < opts.RestartBackoff {
		opts.MaxRestartBackoff = opts.RestartBackoff
	}
	if opts.MaxLogBytes == 0 {
		opts.MaxLogBytes = 10 << 20
	}
	if opts.ShutdownGracePeriod <= 0 {
		opts.ShutdownGracePeriod = 10 * time.Second
	}
	switch opts.Authorization {
	case "":
		opts.Authorization = "Webhook"
	case "Webhook", "AlwaysAllow":
	default:
		return nil, fmt.Errorf("localnode: authorization %q: want Webhook or AlwaysAllow", opts.Authorization)
	}
	if err := opts.ImageMap.Validate(); err != nil {
		return nil, fmt.Errorf("localnode: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{opts: opts, log: log.With("node", opts.NodeName), ready: make(chan struct{}), done: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	var err error
	if n.stateDir, err = filepath.Abs(opts.StateDir); err != nil {
		return nil, err
	}
	if n.ipam, err = newIPAM(opts.PodCIDR, opts.IPLockDir); err != nil {
		return nil, fmt.Errorf("localnode: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(n.stateDir, "pods"), 0o755); err != nil {
		return nil, fmt.Errorf("localnode: state dir: %w", err)
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.UserAgent = "localnode/" + opts.NodeName
	if n.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("localnode: %w", err)
	}
	if u, err := url.Parse(cfg.Host); err == nil && u.Host != "" {
		n.apiHost, n.apiPort = u.Hostname(), u.Port()
		if n.apiPort == "" {
			n.apiPort = "443"
		}
	}
	n.apiCA = cfg.CAData
	if len(n.apiCA) == 0 && cfg.CAFile != "" {
		n.apiCA, _ = os.ReadFile(cfg.CAFile)
	}
	n.allocatable = n.capacity()
	n.provider = newProvider(n)

	if n.tlsConfig, err = n.serverTLS(); err != nil {
		return nil, fmt.Errorf("localnode: %w", err)
	}
	if n.auth, err = n.newAuth(); err != nil {
		return nil, fmt.Errorf("localnode: kubelet API authentication: %w", err)
	}
	if n.listener, err = net.Listen("tcp", opts.ListenAddress); err != nil {
		return nil, fmt.Errorf("localnode: kubelet API: %w", err)
	}
	return n, nil
}

// Name is the Node's name.
func (n *Node) Name() string { return n.opts.NodeName }

// Port is the kubelet API's port.
func (n *Node) Port() int { return n.listener.Addr().(*net.TCPAddr).Port }

// Addr is the kubelet API's address.
func (n *Node) Addr() string { return n.listener.Addr().String() }

// StateDir is where pod directories live.
func (n *Node) StateDir() string { return n.stateDir }

// Ready is closed once the Node is registered and pods are being run.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Done is closed when Run has returned.
func (n *Node) Done() <-chan struct{} { return n.done }

// Err is Run's result, after Done.
func (n *Node) Err() error { return n.err }

// WaitReady waits until the Node is registered and running pods.
func (n *Node) WaitReady(ctx context.Context) error {
	select {
	case <-n.ready:
		return nil
	case <-n.done:
		if n.err != nil {
			return n.err
		}
		return errors.New("localnode stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run registers the Node, runs pods bound to it and serves the kubelet API
// until ctx ends. Then it stops every pod (SIGTERM, SIGKILL after
// ShutdownGracePeriod or the pod's grace period, whichever is shorter), marks
// the Node and its pods not ready, and returns once every process it started
// has ended.
func (n *Node) Run(ctx context.Context) (err error) {
	defer func() {
		n.err = err
		close(n.done)
	}()
	defer n.cancel()
	defer n.ipam.releaseAll()

	version := "v0.0.0"
	if v, err := n.client.Discovery().ServerVersion(); err == nil {
		version = v.GitVersion
	}
	n.sweepStateDir(ctx)

	n.broadcaster = record.NewBroadcaster(record.WithContext(n.ctx))
	n.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: n.client.CoreV1().Events("")})
	defer n.broadcaster.Shutdown()
	n.recorder = &gatedRecorder{EventRecorder: n.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: n.opts.NodeName})}
	defer n.recorder.(*gatedRecorder).off.Store(true) // before the broadcaster shuts down

	nodeSpec := n.nodeObject(version)
	vkCtx, vkCancel := context.WithCancel(withVKLogger(context.Background(), n.log))
	defer vkCancel()
	vk, err := nodeutil.NewNode(n.opts.NodeName,
		func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
			n.provider.lister = pc.Pods
			return n.provider, nodeProvider{}, nil
		},
		func(cfg *nodeutil.NodeConfig) error {
			cfg.Client = n.client
			cfg.NodeSpec = *nodeSpec
			cfg.NumWorkers = 8
			cfg.InformerResyncPeriod = time.Minute
			cfg.SkipDownwardAPIResolution = true // resolved here, with the pod IP known
			cfg.EventRecorder = n.recorder
			cfg.HTTPListenAddr = n.Addr() // served below, not by nodeutil
			return nil
		},
	)
	if err != nil {
		n.listener.Close()
		return fmt.Errorf("localnode: %w", err)
	}

	srv := &http.Server{
		Handler:           n.handler(),
		TLSConfig:         n.tlsConfig,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	go func() { _ = srv.Serve(tls.NewListener(n.listener, n.tlsConfig)) }()
	defer srv.Close()

	vkDone := make(chan error, 1)
	go func() { vkDone <- vk.Run(vkCtx) }()
	if n.opts.BindUnscheduledPods {
		bctx, bcancel := context.WithCancel(n.ctx)
		defer bcancel()
		go n.runBinder(bctx)
	}

	select {
	case <-vk.Ready():
		n.log.Info("node ready", "kubelet", n.Addr(), "podCIDR", n.opts.PodCIDR, "stateDir", n.stateDir)
		close(n.ready)
	case err := <-vkDone:
		n.shutdown()
		return fmt.Errorf("localnode: %w", err)
	case <-ctx.Done():
		n.shutdown()
		vkCancel()
		<-vkDone
		return nil
	}
	select {
	case <-ctx.Done():
	case err = <-vkDone:
		err = fmt.Errorf("localnode: virtual-kubelet stopped: %w", err)
	}
	n.log.Info("shutting down")
	n.shutdown()
	n.markNotReady()
	vkCancel()
	select {
	case <-vkDone:
	case <-time.After(10 * time.Second):
	}
	return err
}

// shutdown stops every pod without deleting it and waits for all processes.
func (n *Node) shutdown() {
	n.cancel()
	var wg sync.WaitGroup
	for _, p := range n.provider.all() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			grace := min(p.gracePeriod(nil), n.opts.ShutdownGracePeriod)
			p.stop(grace, false)
		}()
	}
	wg.Wait()
	n.wg.Wait()
}

// markNotReady tells the API that this node and its pods are no longer
// running (as the node lifecycle controller would once the lease expired).
func (n *Node) markNotReady() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		nd, err := n.client.CoreV1().Nodes().Get(ctx, n.opts.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for i, c := range nd.Status.Conditions {
			if c.Type == corev1.NodeReady {
				nd.Status.Conditions[i].Status = corev1.ConditionFalse
				nd.Status.Conditions[i].Reason = "KubeletStopped"
				nd.Status.Conditions[i].Message = "localnode stopped"
				nd.Status.Conditions[i].LastTransitionTime = metav1.Now()
				nd.Status.Conditions[i].LastHeartbeatTime = metav1.Now()
			}
		}
		_, err = n.client.CoreV1().Nodes().UpdateStatus(ctx, nd, metav1.UpdateOptions{})
		return err
	})
	for _, p := range n.provider.all() {
		_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur := p.current()
			pod, err := n.client.CoreV1().Pods(cur.Namespace).Get(ctx, cur.Name, metav1.GetOptions{})
			if err != nil || pod.UID != p.uid {
				return nil
			}
			for i, c := range pod.Status.Conditions {
				if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
					pod.Status.Conditions[i].Status = corev1.ConditionFalse
					pod.Status.Conditions[i].Reason = "NodeStopped"
					pod.Status.Conditions[i].Message = "localnode stopped"
					pod.Status.Conditions[i].LastTransitionTime = metav1.Now()
				}
			}
			for i := range pod.Status.ContainerStatuses {
				pod.Status.ContainerStatuses[i].Ready = false
			}
			_, err = n.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
			return err
		})
	}
}

// sweepStateDir removes the directories of pods that are no longer bound to
// this node (left by an earlier run).
func (n *Node) sweepStateDir(ctx context.Context) {
	entries, err := os.ReadDir(filepath.Join(n.stateDir, "pods"))
	if err != nil || len(entries) == 0 {
		return
	}
	pods, err := n.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.opts.NodeName})
	if err != nil {
		return
	}
	live := map[types.UID]bool{}
	for _, p := range pods.Items {
		live[p.UID] = true
	}
	for _, e := range entries {
		i := strings.LastIndexByte(e.Name(), '_')
		if i < 0 || !live[types.UID(e.Name()[i+1:])] {
			_ = os.RemoveAll(filepath.Join(n.stateDir, "pods", e.Name()))
		}
	}
}

func (n *Node) nodeLabels() map[string]string {
	l := map[string]string{
		"kubernetes.io/hostname": n.opts.NodeName,
		"kubernetes.io/os":       goruntime.GOOS,
		"kubernetes.io/arch":     goruntime.GOARCH,
		"type":                   "localnode",
	}
	for k, v := range n.opts.Labels {
		l[k] = v
	}
	return l
}

func (n *Node) capacity() corev1.ResourceList {
	c := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(memTotal(), resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(110, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(diskTotal(n.stateDir), resource.BinarySI),
	}
	for k, v := range n.opts.Capacity {
		c[k] = v
	}
	return c
}

func (n *Node) nodeObject(version string) *corev1.Node {
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	kernel, osImage := unameRelease(), osRelease()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        n.opts.NodeName,
			Labels:      n.nodeLabels(),
			Annotations: map[string]string{"localnode.exo.dev/state-dir": n.stateDir},
		},
		Spec: corev1.NodeSpec{
			PodCIDR:  n.opts.PodCIDR,
			PodCIDRs: []string{n.opts.PodCIDR},
			Taints:   n.opts.Taints,
		},
		Status: corev1.NodeStatus{
			Phase:       corev1.NodeRunning,
			Capacity:    n.allocatable,
			Allocatable: n.allocatable,
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "localnode is posting ready status"),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "localnode does not track memory pressure"),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "localnode does not track disk pressure"),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "localnode does not track PID pressure"),
				cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, "RouteCreated", "pod IPs are loopback addresses"),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: hostIP},
				{Type: corev1.NodeHostName, Address: n.opts.NodeName},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(n.Port())}},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          version,
				OperatingSystem:         goruntime.GOOS,
				Architecture:            goruntime.GOARCH,
				KernelVersion:           kernel,
				OSImage:                 osImage,
				ContainerRuntimeVersion: "localnode://" + version,
			},
		},
	}
}

// event records an event about a pod (or one of its containers).
func (n *Node) event(pod *corev1.Pod, c *containerRuntime, eventType, reason, message string) {
	if n.recorder == nil || pod == nil {
		return
	}
	var obj runtime.Object = pod
	if c != nil {
		field := "spec.containers{" + c.name + "}"
		if c.init {
			field = "spec.initContainers{" + c.name + "}"
		}
		obj = &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, FieldPath: field}
	}
	n.recorder.Event(obj, eventType, reason, message)
}

// serverTLS builds the kubelet API's TLS configuration.
func (n *Node) serverTLS() (*tls.Config, error) {
	o := n.opts
	var certPEM, keyPEM []byte
	switch {
	case len(o.ServingCertPEM) > 0:
		certPEM, keyPEM = o.ServingCertPEM, o.ServingKeyPEM
	case len(o.ServingCACertPEM) > 0:
		ca, err := certs.ParseKeyPair(o.ServingCACertPEM, o.ServingCAKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("serving CA: %w", err)
		}
		kp, err := ca.IssueServing(o.NodeName, []string{hostIP, "localhost", o.NodeName}, 365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		certPEM, keyPEM = append(append([]byte{}, kp.CertPEM...), ca.CertPEM...), kp.KeyPEM
	default:
		ca, err := certs.NewCA("localnode-self-signed-ca", 365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		kp, err := ca.IssueServing(o.NodeName, []string{hostIP, "localhost", o.NodeName}, 365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		certPEM, keyPEM = kp.CertPEM, kp.KeyPEM
		n.log.Warn("no serving certificate or CA given: using a self-signed certificate")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequestClientCert,
		NextProtos:   []string{"http/1.1"}, // SPDY and WebSocket upgrades need HTTP/1.1
	}
	if len(o.ClientCAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.ClientCAPEM) {
			return nil, errors.New("client CA: no PEM certificates")
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// handler is the kubelet API: virtual-kubelet's pod routes behind
// authentication and authorization, plus /healthz.
func (n *Node) handler() http.Handler {
	pods := api.PodHandler(api.PodHandlerConfig{
		RunInContainer:    n.RunInContainer,
		AttachToContainer: n.AttachToContainer,
		GetContainerLogs:  n.GetContainerLogs,
		PortForward:       n.PortForward,
		GetPods:           n.provider.GetPods,
		GetPodsFromKubernetes: func(ctx context.Context) ([]*corev1.Pod, error) {
			return n.provider.GetPods(ctx)
		},
		StreamIdleTimeout:     4 * time.Hour,
		StreamCreationTimeout: 30 * time.Second,
	}, false)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.Handle("/", nodeutil.WithAuth(n.auth, pods))
	return mux
}

// gatedRecorder drops events once localnode is shutting down, when the
// broadcaster no longer takes them.
type gatedRecorder struct {
	record.EventRecorder
	off atomic.Bool
}

func (r *gatedRecorder) Event(obj runtime.Object, eventType, reason, message string) {
	if !r.off.Load() {
		r.EventRecorder.Event(obj, eventType, reason, message)
	}
}

func (r *gatedRecorder) Eventf(obj runtime.Object, eventType, reason, format string, args ...any) {
	if !r.off.Load() {
		r.EventRecorder.Eventf(obj, eventType, reason, format, args...)
	}
}

func (r *gatedRecorder) AnnotatedEventf(obj runtime.Object, annotations map[string]string, eventType, reason, format string, args ...any) {
	if !r.off.Load() {
		r.EventRecorder.AnnotatedEventf(obj, annotations, eventType, reason, format, args...)
	}
}
