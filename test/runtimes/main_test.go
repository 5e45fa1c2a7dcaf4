//go:build linux

// Package runtimes drives the real coding-agent CLIs (Claude Code, Codex,
// OpenCode, Gemini CLI, Cline; hack/agent-clis.txt, installed from the npm
// registry by hack/install-agent-clis.sh) through the whole product: a real
// kube-apiserver, agentkube-manager with its controllers and its aggregated
// API (pkg/manager/app), Agent pods on a localnode running the real agentlet,
// and `kubectl agent invoke` (cmd/kubectl-agent). Each CLI talks to
// test/fakemodel through the Agent's spec.model.baseURL, and to nothing else.
//
// localnode runs each Agent pod's processes on this host; the image map puts
// the installed CLIs on their PATH, which in a cluster the runtime's image
// does (images/runtime-*.Dockerfile).
package runtimes

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/cmd/server"
	"github.com/exo-in-go/exo/pkg/localnode"
	"github.com/exo-in-go/exo/pkg/localnode/localnodetest"
	"github.com/exo-in-go/exo/pkg/manager/app"
	"github.com/exo-in-go/exo/test/framework"
)

// env is the package's cluster, node and manager (TestMain).
var env struct {
	cluster *framework.Cluster
	// clis is the folder of the installed CLIs (claude, codex, …).
	clis string
	// bin holds the agentlet and kubectl-agent binaries.
	bin string
	// nodeDir is the localnode's state: pods/<ns>_<name>_<uid>/volumes/….
	nodeDir string
}

func TestMain(m *testing.M) {
	// controller-runtime complains about its unset global logger otherwise.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(framework.Main(m, setUp))
}

func setUp(ctx context.Context, c *framework.Cluster) (func(), error) {
	env.cluster = c
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	fail := func(err error) (func(), error) { stop(); return nil, err }

	install := exec.CommandContext(ctx, filepath.Join(framework.RepoRoot(), "hack", "install-agent-clis.sh"))
	install.Stderr = os.Stderr
	out, err := install.Output()
	if err != nil {
		return fail(fmt.Errorf("installing the agent CLIs (hack/install-agent-clis.sh): %w", err))
	}
	env.clis = strings.TrimSpace(string(out))

	tmp, err := os.MkdirTemp("", "exo-runtimes-")
	if err != nil {
		return fail(err)
	}
	stops = append(stops, func() { _ = os.RemoveAll(tmp) })
	env.bin, env.nodeDir = filepath.Join(tmp, "bin"), filepath.Join(tmp, "node")
	build := exec.CommandContext(ctx, "go", "build", "-o", env.bin+"/", "./cmd/agentlet", "./cmd/kubectl-agent")
	build.Dir = framework.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("go build: %w\n%s", err, out))
	}

	opts := localnodetest.PackageOptions(c, nodeImages(filepath.Join(env.bin, "agentlet")), env.nodeDir)
	opts.NodeName = "runtimes-node"
	_, stopNode, err := localnodetest.RunPackage(ctx, opts)
	if err != nil {
		return fail(err)
	}
	stops = append(stops, func() {
		if err := stopNode(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	})
	stopManager, err := startManager(ctx, c, tmp)
	if err != nil {
		return fail(err)
	}
	stops = append(stops, stopManager)
	return stop, nil
}

// nodeImages maps the images of Agent pods as every localnode test does
// (localnodetest.AgentImages: the agentlet binary, and stand-ins for the
// runtime images that start the agentlet), and puts the installed CLIs first
// on every container's PATH, whichever container runs the agentlet.
func nodeImages(agentlet string) localnode.ImageMap {
	images := localnodetest.AgentImages(agentlet)
	for i := range images.Images {
		m := &images.Images[i]
		if m.Env == nil {
			m.Env = map[string]string{}
		}
		m.Env["PATH"] = env.clis + ":/usr/local/bin:/usr/bin:/bin"
	}
	return images
}

// startManager runs agentkube-manager as cmd/agentkube-manager assembles it
// (pkg/manager/app) with every controller, and its aggregated API on a free
// loopback port, registered with kube-apiserver under a certificate from a
// test CA for the name the aggregator checks. Its admission webhook is off:
// nothing here depends on it.
func startManager(ctx context.Context, c *framework.Cluster, dir string) (func(), error) {
	if err := c.EnsureNamespace(ctx, server.ServiceNamespace); err != nil {
		return nil, err
	}
	ca, err := certs.NewCA("runtimes-test-ca", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	pair, err := ca.IssueServing("agentkube-manager", []string{server.ServiceName + "." + server.ServiceNamespace + ".svc", "127.0.0.1"}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	for path, data := range map[string][]byte{certFile: pair.CertPEM, keyFile: pair.KeyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port

	st := app.DefaultSettings()
	st.Manager.LeaderElection = false
	st.Manager.MetricsBindAddress, st.Manager.HealthProbeBindAddress = "0", "0"
	st.Manager.Controllers = []string{"*"}
	st.Manager.RunPollInterval = 500 * time.Millisecond
	st.Webhook.Port = 0
	// The serving pair comes from the files; the manager still keeps its
	// agentlet CA, which the Agents' TLS needs.
	st.Certs.DisableRotation = true
	serving := st.API.SecureServing
	serving.Listener, serving.BindAddress, serving.BindPort = ln, net.ParseIP("127.0.0.1"), port
	serving.ServerCert.CertKey.CertFile, serving.ServerCert.CertKey.KeyFile = certFile, keyFile
	st.API.Authentication.RemoteKubeConfigFile = c.KubeconfigPath
	st.API.Authorization.RemoteKubeConfigFile = c.KubeconfigPath
	mgr, err := app.New(st, app.Options{Config: c.Config})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("assembling agentkube-manager: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintln(os.Stderr, "agentkube-manager:", err)
			}
		case <-time.After(time.Minute):
			fmt.Fprintln(os.Stderr, "agentkube-manager did not stop within a minute")
		}
	}
	err = c.RegisterAggregatedAPI(ctx, framework.AggregatedAPI{
		Group: "subresources.agentkube.io", Version: "v1alpha1",
		Namespace: server.ServiceNamespace, Service: server.ServiceName,
		Port: int32(port), CABundle: ca.CertPEM,
	})
	if err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}
