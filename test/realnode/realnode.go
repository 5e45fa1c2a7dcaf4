// Package realnode runs a real single-node Kubernetes cluster for tests and for people:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a real kubelet with
// containerd, runc and the CNI bridge plugin, kube-proxy and CoreDNS, all inside a
// network namespace of their own, without Docker and without any network: images are
// built locally (hack/images.sh) and imported, never pulled. docs/testing.md describes
// it; shared/reference/realnode.md records why each setting is what it is.
//
//	c := realnode.StartT(t, realnode.Options{Images: []string{archive}})
//	cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
//	out, err := c.Kubectl(ctx, "exec", "deploy/web", "--", "sh", "-c", "nslookup web")
//	resp, err := (&http.Client{Transport: &http.Transport{DialContext: c.DialContext}}).Get("http://" + podIP + ":8080/")
//	addr, stop, err := c.ExposeHost(hostServer.Addr()) // pods reach a host server there
//
// It needs root, the binaries of hack/build-kube-binaries.sh (kubelet, kube-proxy and
// coredns besides the control plane's) and the packages of hack/realnode/install-deps.sh;
// `make realnode-deps` provides both.
package realnode

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/test/framework"
)

// Options configure Start; the zero value is a complete cluster in a new temporary
// folder.
type Options struct {
	// Dir holds the cluster's state, configuration and logs (Dir/log). A new temporary
	// folder, removed by Stop, when empty; a given Dir is kept with its logs, and cleared
	// (logs aside) by the next Start in it. At most 60 characters: containerd's sockets
	// live under it, and a socket path may not exceed 107.
	Dir string
	// Name names the network namespace, the cgroup, the CNI network and the node. Derived
	// from Dir when empty, so clusters in different folders run side by side, and a
	// Start in the folder of a crashed run cleans that run up first.
	Name string
	// Images are image archives to import before kubelet starts: OCI layouts written by
	// hack/images.sh, or docker-archives. See Cluster.Import.
	Images []string
	// NoKubeProxy runs no kube-proxy: Service ClusterIPs then lead nowhere, and the
	// cluster's DNS is reached at CoreDNS's pod. Combine with AggregatorRouting so that
	// kube-apiserver still reaches webhooks and aggregated APIs behind Services.
	NoKubeProxy bool
	// AggregatorRouting sets kube-apiserver's --enable-aggregator-routing: it calls the
	// endpoints of a webhook's or an APIService's Service rather than its ClusterIP.
	AggregatorRouting bool
	// APIServerFlags add to or override kube-apiserver's flags.
	APIServerFlags map[string][]string
	// APIServerPort is the host port (on 127.0.0.1) of the forwarder to kube-apiserver
	// that Kubeconfig points at; any free port when 0.
	APIServerPort int
	// Logf receives progress (what started, each wait and how long it took); StartT
	// passes t.Logf. Nil discards it.
	Logf func(format string, args ...any)
}

// Cluster is a running real node.
type Cluster struct {
	// Name is the cluster's (the node's, the network namespace's) name.
	Name string
	// Dir holds the cluster's files; Dir/log the daemons' logs and Dir/log/pods the pods'.
	Dir string
	// Kubeconfig is an admin (system:masters) kubeconfig for kubectl, helm and client-go
	// on the host: it points at a forwarder on 127.0.0.1 that Stop ends.
	Kubeconfig string
	// BinDir holds the Kubernetes binaries, kubectl among them.
	BinDir string
	// Kube is an admin client.
	Kube kubernetes.Interface

	opts    Options
	ownsDir bool
	config  *rest.Config
	admin   *certs.KeyPair
	ca      []byte
	started time.Time

	mu         sync.Mutex
	daemons    []*daemon
	forwarders []*forwarder
	dnsServer  string
	stopped    bool
	registered bool
	stopOnce   sync.Once
	stopErr    error
}

// maxDirLen keeps the longest socket path under Dir (containerd's ttrpc socket) below
// the kernel's 107 characters.
const maxDirLen = 60

//go:embed coredns.yaml
var corednsManifest string

// Start starts a cluster and waits until it is ready to use: the node Ready, the default
// ServiceAccount created, CoreDNS answering: 15 to 20 seconds. On failure it
// tears everything down again and the error carries the tails of the daemons' logs.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("realnode: a real node needs root (network namespaces, mounts, cgroups, iptables): run the tests as root")
	}
	if err := checkHostTools(); err != nil {
		return nil, err
	}
	bins, err := nodeBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, BinDir: bins, started: time.Now()}
	if err := c.chooseDir(); err != nil {
		return nil, err
	}
	if err := c.register(); err != nil {
		if c.ownsDir {
			os.RemoveAll(c.Dir)
		}
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		tails := c.LogTails(30)
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("tearing down after the failure: %w", stopErr))
		}
		return nil, fmt.Errorf("realnode: starting cluster %s in %s: %w\n%s", c.Name, c.Dir, err, tails)
	}
	c.logf("cluster %s ready in %s (kubeconfig %s)", c.Name, time.Since(c.started).Round(time.Millisecond), c.Kubeconfig)
	return c, nil
}

// StartT is Start for a test: it fails the test when the cluster does not start, and
// stops the cluster when the test ends, printing the daemons' log tails first if the
// test failed.
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = func(format string, args ...any) { t.Logf("realnode: "+format, args...) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if tails := c.LogTails(40); t.Failed() && tails != "" {
			t.Log(tails)
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the real node: %v", err)
		}
	})
	return c
}

func (c *Cluster) start(ctx context.Context) error {
	for _, d := range []string{"log/pods", "etc", "containerd", "kubelet"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", c.path(d), err)
		}
	}
	if err := c.writePKI(); err != nil {
		return err
	}
	if err := c.writeConfigs(); err != nil {
		return err
	}
	g := c.cgroups()
	if err := g.create(""); err != nil {
		return err
	}
	if err := g.create(daemonsCgroup); err != nil {
		return err
	}
	if err := c.setupNetwork(ctx); err != nil {
		return err
	}
	// The images build (when stale) while the control plane starts.
	type built struct {
		archives []string
		err      error
	}
	images := make(chan built, 1)
	go func() {
		pause, err := pauseImage(ctx)
		if err != nil {
			images <- built{err: err}
			return
		}
		coredns, err := corednsImage(ctx, c.BinDir)
		images <- built{archives: []string{pause, coredns}, err: err}
	}()

	// Everything but kubelet at once: each waits for what it needs (etcd, the API).
	bin := func(name string) string { return filepath.Join(c.BinDir, name) }
	type daemonStart struct {
		name, path string
		args       []string
	}
	starts := []daemonStart{
		{"etcd", bin("etcd"), c.etcdArgs()},
		{"containerd", "containerd", []string{"--config", c.path("etc", "containerd.toml")}}, // Debian's
		{"kube-apiserver", bin("kube-apiserver"), c.apiServerArgs()},
		{"kube-controller-manager", bin("kube-controller-manager"), c.controllerManagerArgs()},
		{"kube-scheduler", bin("kube-scheduler"), c.schedulerArgs()},
	}
	if !c.opts.NoKubeProxy {
		starts = append(starts, daemonStart{"kube-proxy", bin("kube-proxy"), []string{"--config", c.path("etc", "kube-proxy.yaml")}})
	}
	for _, s := range starts {
		if _, err := c.startDaemon(s.name, s.path, s.args...); err != nil {
			return err
		}
	}
	if err := c.waitFor(ctx, "containerd's socket", time.Minute, func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", c.containerdSocket())
		if err == nil {
			conn.Close()
		}
		return err
	}); err != nil {
		return err
	}
	b := <-images
	if b.err != nil {
		return b.err
	}
	if err := c.Import(ctx, append(b.archives, c.opts.Images...)...); err != nil {
		return err
	}
	c.logf("images imported after %s", time.Since(c.started).Round(time.Millisecond))
	if _, err := c.startDaemon("kubelet", bin("kubelet"), c.kubeletArgs()...); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// connect starts the host's forwarder to kube-apiserver and writes Kubeconfig.
func (c *Cluster) connect() error {
	f, err := c.forwardAPIServer(c.opts.APIServerPort)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.forwarders = append(c.forwarders, f)
	c.mu.Unlock()
	kubeconfig, err := kubeconfigFor("admin", "https://"+f.ln.Addr().String(), c.ca, c.admin)
	if err != nil {
		return err
	}
	c.Kubeconfig = c.path("kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", c.Kubeconfig, err)
	}
	if c.config, err = clientcmd.RESTConfigFromKubeConfig(kubeconfig); err != nil {
		return fmt.Errorf("reading the admin kubeconfig: %w", err)
	}
	if c.Kube, err = kubernetes.NewForConfig(c.config); err != nil {
		return fmt.Errorf("building the admin client: %w", err)
	}
	return nil
}

// waitReady waits for what a test needs before its first pod: kube-apiserver ready,
// the node Ready, the default ServiceAccount (created by kube-controller-manager, which
// takes a few seconds to start its controllers), and CoreDNS answering (a Deployment
// Available is not enough: kube-proxy's rules and CoreDNS's view of the API lag a moment).
func (c *Cluster) waitReady(ctx context.Context) error {
	if err := c.waitFor(ctx, "kube-apiserver ready", 2*time.Minute, func(ctx context.Context) error {
		return c.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
	}); err != nil {
		return err
	}
	if err := c.applyManifest(ctx, strings.ReplaceAll(corednsManifest, "IMAGE", corednsImageRef)); err != nil {
		return fmt.Errorf("applying CoreDNS: %w", err)
	}
	if err := c.waitFor(ctx, "node Ready", 2*time.Minute, func(ctx context.Context) error {
		node, err := c.Kube.CoreV1().Nodes().Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node %s not Ready", c.Name)
	}); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "default ServiceAccount", 2*time.Minute, func(ctx context.Context) error {
		_, err := c.Kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "CoreDNS Available", 2*time.Minute, func(ctx context.Context) error {
		d, err := c.Kube.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range d.Status.Conditions {
			if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("deployment kube-system/coredns not Available")
	}); err != nil {
		return err
	}
	server := net.JoinHostPort(DNSServiceIP, "53")
	if c.opts.NoKubeProxy {
		pods, err := c.Kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		if err != nil || len(pods.Items) == 0 || pods.Items[0].Status.PodIP == "" {
			return fmt.Errorf("finding CoreDNS's pod: %v", err)
		}
		server = net.JoinHostPort(pods.Items[0].Status.PodIP, "1053")
	}
	c.mu.Lock()
	c.dnsServer = server
	c.mu.Unlock()
	want := "kubernetes.default.svc." + clusterDomain
	return c.waitFor(ctx, "CoreDNS answering", time.Minute, func(ctx context.Context) error {
		// A query sent before kube-proxy's rules for the Service exist is never
		// answered: ask again soon rather than wait out the resolver's timeout.
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		addrs, err := c.resolver().LookupHost(ctx, want)
		if err != nil {
			return err
		}
		if len(addrs) != 1 || addrs[0] != apiServiceIP {
			return fmt.Errorf("%s resolved to %v, want %s", want, addrs, apiServiceIP)
		}
		return nil
	})
}

// applyManifest creates every object of a multi-document YAML manifest.
func (c *Cluster) applyManifest(ctx context.Context, manifest string) error {
	dyn, err := dynamic.NewForConfig(c.config)
	if err != nil {
		return fmt.Errorf("building a dynamic client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Kube.Discovery()))
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decoding the manifest: %w", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("finding the resource of %s: %w", gvk, err)
		}
		var resource dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			resource = dyn.Resource(mapping.Resource).Namespace(u.GetNamespace())
		}
		if _, err := resource.Create(ctx, &u, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

// waitFor polls cond, backing off from 1 ms to 100 ms like test/poll, until it returns
// nil, a daemon exits, or timeout passes. Each call of cond gets five seconds.
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(delay*2, 100*time.Millisecond) {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		err := cond(attempt)
		cancelAttempt()
		if err == nil {
			c.logf("%s after %s", what, time.Since(c.started).Round(time.Millisecond))
			return nil
		}
		if exited := c.exitedDaemon(); exited != nil {
			return fmt.Errorf("waiting for %s: %w", what, exited)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(delay): // polling other processes' progress
		}
	}
}

// RESTConfig is an admin (system:masters) client configuration, through the same
// forwarder as Kubeconfig.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.config) }

// Kubectl runs the built kubectl against the cluster as the admin and returns its
// standard output; the error carries its standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Env = []string{"HOME=" + c.Dir, "PATH=" + hostPath}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Stop stops the cluster and removes everything it made: the pods' processes and
// containerd's shims, the daemons, every mount under Dir, the cgroups, the network
// namespace, its entries in the shared folders (and those folders, when the last cluster
// stops and they were the clusters'), and Dir itself if Start made it (otherwise all of
// Dir but its logs). It takes about 2.5 seconds; later calls return the first's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	began := time.Now()
	c.mu.Lock()
	c.stopped = true
	forwarders := c.forwarders
	c.forwarders = nil
	c.mu.Unlock()
	for _, f := range forwarders {
		f.Close()
	}
	// kubelet first, so that it restarts nothing; then the pods' processes, while
	// containerd still runs, so that their shims see the tasks end and exit cleanly.
	c.stopDaemons(5*time.Second, "kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager")
	c.stopPods()
	c.stopDaemons(5*time.Second, "containerd", "kube-apiserver")
	c.stopDaemons(5*time.Second, "etcd")
	err := finish(c.Name, c.Dir, c.ownsDir, c.registered)
	c.logf("cluster %s stopped in %s", c.Name, time.Since(began).Round(time.Millisecond))
	return err
}

// stopPods kills the pods' processes and gives containerd's shims a moment to notice
// and exit.
func (c *Cluster) stopPods() {
	g := c.cgroups()
	pods := cgroupSet{hierarchies: g.hierarchies, root: g.root + "/kubepods"}
	_ = killAll(pods, 5*time.Second)
	daemons := map[int]bool{}
	c.mu.Lock()
	for _, d := range c.daemons {
		daemons[d.cmd.Process.Pid] = true
	}
	c.mu.Unlock()
	shims := cgroupSet{hierarchies: g.hierarchies, root: g.root + "/" + daemonsCgroup}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		left := 0
		for _, pid := range shims.pids() {
			if !daemons[pid] && alive(pid) {
				left++
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond) // waiting for containerd's shims to exit
	}
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

func (c *Cluster) netnsPath() string { return netnsPath(c.Name) }

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

var nodeBinaries = sync.OnceValues(func() (string, error) {
	names := []string{
		"kube-apiserver", "kubectl", "etcd", "kube-controller-manager", "kube-scheduler",
		"kubelet", "kube-proxy", "coredns",
	}
	cmd := exec.Command(filepath.Join(framework.RepoRoot(), "hack", "build-kube-binaries.sh"), names...)
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("realnode: building %s with hack/build-kube-binaries.sh (make realnode-deps): %w", strings.Join(names, ", "), err)
	}
	return strings.TrimSpace(stdout.String()), nil
})

// checkHostTools fails with what to run when Debian's packages are missing.
func checkHostTools() error {
	var missing []string
	for _, tool := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "conntrack", "nsenter", "ip"} {
		found := false
		for _, dir := range filepath.SplitList(hostPath) {
			if _, err := os.Stat(filepath.Join(dir, tool)); err == nil {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, tool)
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
			missing = append(missing, "/usr/lib/cni/"+plugin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("realnode: missing %s: run hack/realnode/install-deps.sh (make realnode-deps)", strings.Join(missing, ", "))
	}
	return nil
}
