// Command run-cluster brings the whole system up on a real single-node Kubernetes for
// `make run-cluster`: the node of test/realnode (kubelet, containerd and runc, kube-proxy,
// CoreDNS, kube-controller-manager and kube-scheduler in a network namespace of its own),
// the project's images built for this machine and imported, exo-app and agentkube
// installed with helm exactly as docs/install.md says (the runtime plane managed, reaching
// exo-app by its Service's DNS name), a seeded tenant, administrator and deployment, and
// the sample Agent running in a real container. exo-app is forwarded to the host's
// 127.0.0.1 for the browser. Once an invoke has answered it prints how to reach
// everything; Ctrl-C (or SIGTERM) stops the node and leaves nothing running.
//
// It needs root and `make kube-binaries realnode-deps helm`, which `make run-cluster`
// runs first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/realnode"
)

func main() {
	if err := run(); err != nil {
		slog.Error("run-cluster failed", "err", err)
		os.Exit(1)
	}
}

// options are the flags; the defaults are what `make run-cluster` uses, and the test
// gives each its own so that it runs beside a user's run.
type options struct {
	root   string
	dir    string // the run's state: DIR/node (the real node's), DIR/pv, DIR/home
	bin    string // the kubectl-agent plugin
	images string // the project's image archives
	port   int    // exo-app on the host
}

// The folders under options.dir. node is realnode's Dir: realnode refuses a Dir that
// holds anything but a cluster's files, so exo-app's volume and the commands' HOME live
// beside it rather than in it.
func (o options) nodeDir() string { return filepath.Join(o.dir, "node") }
func (o options) pvDir() string   { return filepath.Join(o.dir, "pv", "exo-app-data") }
func (o options) home() string    { return filepath.Join(o.dir, "home") }

// checkDir refuses a folder that holds anything but a run's: each run removes DIR/pv
// and DIR/home, which must never be someone's files (-dir /tmp by mistake).
func (o options) checkDir() error {
	entries, err := os.ReadDir(o.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if p := filepath.Join(o.dir, e.Name()); p != o.nodeDir() && p != filepath.Dir(o.pvDir()) && p != o.home() {
			return fmt.Errorf("%s holds %s, which is not a run's: give a new or empty folder with -dir", o.dir, e.Name())
		}
	}
	return nil
}

func (o options) baseURL() string { return fmt.Sprintf("http://localhost:%d", o.port) }

func run() error {
	o := options{root: framework.RepoRoot()}
	flag.StringVar(&o.dir, "dir", "/tmp/exo-run-cluster", "folder of the run's state and logs, at most 55 characters (the node's sockets live under it); a run in the same folder first cleans up after a crashed one")
	flag.StringVar(&o.bin, "bin", filepath.Join(o.root, "_output", "bin"), "folder the kubectl-agent plugin is built into")
	flag.StringVar(&o.images, "images", filepath.Join(o.root, "_output", "run-cluster", "images"), "folder the project's image archives are built into")
	flag.IntVar(&o.port, "port", 9092, "port on 127.0.0.1 that forwards to exo-app: the UI is http://localhost:PORT")
	flag.Parse()
	var err error
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	if err := o.checkDir(); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// What would fail late fails first: root for the node, helm, the port.
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root (network namespaces, mounts, cgroups, iptables): run make run-cluster as root")
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.port))
	if err != nil {
		return fmt.Errorf("listening for exo-app's forwarder (is make run or another run-cluster using the port? pass -port): %w", err)
	}
	defer ln.Close()
	// helm is built once into the Kubernetes binaries' cache (make helm); the script
	// prints where, building it first if it is missing.
	buildHelm := exec.CommandContext(ctx, filepath.Join(o.root, "hack", "build-helm.sh"))
	buildHelm.Stderr = os.Stderr
	helm, err := buildHelm.Output()
	if err != nil {
		return fmt.Errorf("hack/build-helm.sh: %w", err)
	}

	began := time.Now()
	// The images build while the node starts (both take tens of seconds, mostly waiting
	// on different things); they are imported once both are done, before any pod needs
	// them.
	slog.Info("building the project's images and the kubectl-agent plugin", "images", o.images, "bin", o.bin)
	buildCtx, cancelBuild := context.WithCancel(ctx)
	defer cancelBuild()
	built := make(chan buildResult, 1)
	go func() { built <- buildArtifacts(buildCtx, o) }()

	slog.Info("starting the real node", "dir", o.nodeDir())
	startCtx, cancelStart := context.WithTimeout(ctx, 5*time.Minute)
	node, err := realnode.Start(startCtx, realnode.Options{
		Dir:  o.nodeDir(),
		Logf: func(format string, args ...any) { slog.Info("realnode: " + fmt.Sprintf(format, args...)) },
	})
	cancelStart()
	if err != nil {
		cancelBuild()
		<-built // its commands end with buildCtx
		return err
	}
	// Forwarding stops before the node does, so no connection dials into a namespace
	// that is going away.
	fwdCtx, stopForwarding := context.WithCancel(context.Background())
	forwarded := make(chan struct{})
	defer func() {
		stopForwarding()
		<-forwarded
		stopNode(node, o)
	}()
	go func() {
		defer close(forwarded)
		forward(fwdCtx, ln, func(ctx context.Context) (net.Conn, error) {
			return node.DialContext(ctx, "tcp", exoAppAddress)
		})
	}()

	b := <-built
	if b.err != nil {
		return b.err
	}
	if err := node.Import(ctx, b.archives...); err != nil {
		return err
	}
	slog.Info("images imported", "after", time.Since(began).Round(time.Second))

	in := &installer{node: node, o: o, helm: strings.TrimSpace(string(helm))}
	seeded, err := in.install(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted before the system was up: %w", ctx.Err())
		}
		return in.explain(err)
	}
	slog.Info("up", "after", time.Since(began).Round(time.Second))
	printWelcome(node, o, seeded)

	<-ctx.Done()
	slog.Info("stopping")
	return nil
}

// stopNode stops the node, which removes everything it made (processes, mounts,
// cgroups, the network namespace) and keeps its logs, and then removes exo-app's
// volume and the commands' HOME: the next run starts from nothing.
func stopNode(node *realnode.Cluster, o options) {
	began := time.Now()
	if err := node.Stop(); err != nil {
		slog.Error("stopping the real node", "err", err)
		return
	}
	for _, d := range []string{filepath.Dir(o.pvDir()), o.home()} {
		if err := os.RemoveAll(d); err != nil {
			slog.Error("removing the run's files", "err", err)
		}
	}
	slog.Info("stopped; nothing left running", "in", time.Since(began).Round(100*time.Millisecond), "logs", filepath.Join(o.nodeDir(), "log"))
}

type buildResult struct {
	archives []string
	err      error
}

// buildArtifacts builds the images the charts and the manager name
// (ghcr.io/exo-in-go/<name>:<VERSION>) for this machine's platform, as `make images`
// does, the busybox image the sample Agent runs here, and the kubectl-agent plugin.
func buildArtifacts(ctx context.Context, o options) buildResult {
	release := exec.CommandContext(ctx, filepath.Join(o.root, "hack", "images.sh"), "release",
		"--platforms", "linux/"+runtime.GOARCH, "--out", o.images, "--bin", filepath.Join(o.images, "bin"))
	plugin := exec.CommandContext(ctx, "go", "build", "-o", o.bin+"/", "./cmd/kubectl-agent")
	// Side by side: warm, each is mostly one busy thread (compressing layers, linking).
	errs := make([]error, 2)
	var builds sync.WaitGroup
	for i, cmd := range []*exec.Cmd{release, plugin} {
		cmd.Dir = o.root
		builds.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s: %w\n%s", cmd, err, out)
			}
		})
	}
	builds.Wait()
	var r buildResult
	if r.err = errors.Join(errs...); r.err != nil {
		return r
	}
	for _, name := range []string{"agentkube-manager", "agentkube-agentlet", "exo-app"} {
		r.archives = append(r.archives, filepath.Join(o.images, name+".tar"))
	}
	busybox, err := realnode.BusyboxImage(ctx)
	r.archives, r.err = append(r.archives, busybox), err
	return r
}

func printWelcome(node *realnode.Cluster, o options, s *seed) {
	fmt.Printf(`
Exo in Go is running on a real node: kubelet, containerd, kube-proxy and CoreDNS in
network namespace %[1]s, with exo-app and agentkube installed by helm (docs/install.md).

  UI              %[2]s
  sign in         %[3]s / %[4]s
  kubeconfig      %[5]s
  logs            %[6]s/log (the node's daemons), %[6]s/log/pods (the pods')

Try, in another shell:
  export KUBECONFIG=%[5]s PATH=%[7]s:%[8]s:$PATH
  kubectl get pods -A
  helm list -A
  kubectl get agents
  kubectl agent invoke hello --input "world" --wait
  open %[2]s/deployments/%[9]s/agents/default/hello and press "Open shell"

Press Ctrl-C to stop everything.
`, node.Name, o.baseURL(), adminEmail, adminPassword, node.Kubeconfig, o.nodeDir(),
		o.bin, node.BinDir, s.deploymentID)
}
