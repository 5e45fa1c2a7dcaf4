// Package aggregated tests the subresources.agentkube.io aggregated API end to end: a real
// etcd and kube-apiserver with the front proxy configured, agentkube-manager (app.New)
// serving it in this process on 127.0.0.1, registered through a real APIService, real
// agentlets on loopback ports, kubectl and the kubectl-agent plugin as subprocesses.
package aggregated

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/cmd/server"
	"github.com/exo-in-go/exo/pkg/manager/app"
	"github.com/exo-in-go/exo/test/framework"
)

// env is the shared test environment; one cluster for the package (see TestMain).
var env *environment

type environment struct {
	cluster *framework.Cluster
	ca      *certs.KeyPair
	// certFile and keyFile are the aggregated server's serving certificate, read through
	// --tls-cert-file/--tls-private-key-file.
	certFile, keyFile string
	port              int
	server            *testServer
	// pluginDir holds the kubectl-agent binary, put on kubectl's PATH.
	pluginDir string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := setUp(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setting up:", err)
		if e != nil {
			e.tearDown()
		}
		return 1
	}
	code := m.Run()
	e.tearDown()
	return code
}

func setUp(ctx context.Context) (*environment, error) {
	c, err := framework.Start(ctx, framework.Options{})
	if err != nil {
		return nil, err
	}
	e := &environment{cluster: c}
	env = e // the executor and helpers below read it
	if e.pluginDir, err = os.MkdirTemp("", "kubectl-agent-"); err != nil {
		return e, err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(e.pluginDir, "kubectl-agent"), "./cmd/kubectl-agent")
	build.Dir = framework.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return e, fmt.Errorf("building kubectl-agent: %w: %s", err, out)
	}

	// The serving certificate names the Service the APIService points at, as the
	// aggregator verifies it against <service>.<namespace>.svc.
	if e.ca, err = certs.NewCA("agentkube-test-ca", 24*time.Hour); err != nil {
		return e, err
	}
	serving, err := e.ca.IssueServing("agentkube-manager", []string{
		server.ServiceName + "." + server.ServiceNamespace + ".svc", "localhost", "127.0.0.1",
	}, 24*time.Hour)
	if err != nil {
		return e, err
	}
	e.certFile, e.keyFile = filepath.Join(c.Dir, "aggregated.crt"), filepath.Join(c.Dir, "aggregated.key")
	if err := os.WriteFile(e.certFile, serving.CertPEM, 0o600); err != nil {
		return e, err
	}
	if err := os.WriteFile(e.keyFile, serving.KeyPEM, 0o600); err != nil {
		return e, err
	}

	// The manifests as shipped: APIService, bindings and aggregated roles. Then the
	// framework points the APIService at this process with the test CA.
	if err := applyManifest(ctx, c, filepath.Join(framework.RepoRoot(), "artifacts", "manager", "aggregated-api.yaml")); err != nil {
		return e, err
	}
	if err := aggregateClusterRoles(ctx, c.Kube); err != nil {
		return e, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return e, err
	}
	e.port = ln.Addr().(*net.TCPAddr).Port
	if e.server, err = e.startServer(ln); err != nil {
		return e, err
	}
	if err := e.register(ctx); err != nil {
		return e, err
	}
	startExecutor()
	return e, nil
}

func (e *environment) register(ctx context.Context) error {
	return e.cluster.RegisterAggregatedAPI(ctx, framework.AggregatedAPI{
		Group:     "subresources.agentkube.io",
		Version:   "v1alpha1",
		Namespace: server.ServiceNamespace,
		Service:   server.ServiceName,
		Port:      int32(e.port),
		CABundle:  e.ca.CertPEM,
	})
}

func (e *environment) tearDown() {
	stopExecutor()
	if e.server != nil {
		e.server.stop()
	}
	if e.pluginDir != "" {
		_ = os.RemoveAll(e.pluginDir)
	}
	if e.cluster != nil {
		_ = e.cluster.Stop()
	}
}

// testServer is agentkube-manager, serving the aggregated API, running in this process.
type testServer struct {
	cancel context.CancelFunc
	done   chan error
}

// startServer runs agentkube-manager as app.New assembles it, serving the aggregated API
// on ln with the upstream flags a deployment sets: the serving certificate files (so the
// certificate rotator issues none and injects no caBundle: --cert-disable-rotation), and
// kubeconfigs for delegated authentication and authorization (in a pod these default to
// in-cluster). Its controllers are off: the executor stands in for the AgentRun
// controller, and no webhook is registered.
func (e *environment) startServer(ln net.Listener) (*testServer, error) {
	st := app.DefaultSettings()
	st.Manager.LeaderElection = false
	st.Manager.MetricsBindAddress, st.Manager.HealthProbeBindAddress = "0", "0"
	st.Manager.Controllers = nil
	st.Certs.DisableRotation = true
	st.Webhook.Port = 0
	o := st.API
	o.SecureServing.Listener = ln
	o.SecureServing.BindAddress = net.ParseIP("127.0.0.1")
	o.SecureServing.BindPort = e.port
	o.SecureServing.ServerCert.CertKey.CertFile = e.certFile
	o.SecureServing.ServerCert.CertKey.KeyFile = e.keyFile
	o.Authentication.RemoteKubeConfigFile = e.cluster.KubeconfigPath
	o.Authorization.RemoteKubeConfigFile = e.cluster.KubeconfigPath
	a, err := app.New(st, app.Options{Config: e.cluster.Config})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("assembling agentkube-manager: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- a.Start(ctx) }()
	return ts, nil
}

func (s *testServer) stop() {
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(time.Minute):
	}
}
