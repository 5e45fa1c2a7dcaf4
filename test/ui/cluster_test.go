package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"

	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/connect/connecttest"
	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/pkg/localnode/localnodetest"
	"github.com/exo-in-go/exo/pkg/manager"
	agentregistry "github.com/exo-in-go/exo/pkg/registry/agent"
	"github.com/exo-in-go/exo/test/framework"
)

// The cluster the dashboard shows: a real kube-apiserver, agentkube-manager's
// controllers, and a localnode that runs Agent pods with the real agentlet.
// The operator's tunnel connector starts in the test, with the deployment
// token the test reads from the page.
var cluster *framework.Cluster

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c, err := framework.Start(ctx, framework.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start cluster:", err)
		return 1
	}
	defer c.Stop()
	cluster = c
	if err := c.EnsureNamespace(ctx, "agentkube-system"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "exo-ui-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	agentlet := filepath.Join(tmp, "agentlet")
	build := exec.CommandContext(ctx, "go", "build", "-o", agentlet, "./cmd/agentlet")
	build.Dir = framework.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/agentlet: %v\n%s", err, out)
		return 1
	}

	nodeOpts := localnodetest.PackageOptions(c, localnodetest.AgentImages(agentlet), filepath.Join(tmp, "node"))
	nodeOpts.NodeName = "ui-node"
	_, stopNode, err := localnodetest.RunPackage(ctx, nodeOpts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := stopNode(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	opts := manager.DefaultOptions()
	opts.LeaderElection = false
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	opts.RunPollInterval = time.Second
	mgr, err := manager.New(c.Config, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	runCtx, stop := context.WithCancel(context.Background())
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(runCtx) }()

	code := m.Run()

	stop()
	select {
	case err := <-mgrDone:
		if err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	case <-time.After(time.Minute):
		fmt.Fprintln(os.Stderr, "the manager did not stop within a minute")
		code = 1
	}
	return code
}

// startOperator runs the tunnel connector as agentkube-manager runs it in
// managed mode (leader only there; alone here): a cache of agentkube objects
// and managed pods, run output followed in the agentlet, with the given
// deployment token.
func startOperator(t *testing.T, baseURL, token string) {
	t.Helper()
	kube, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	connecttest.Start(t, cluster.Config, cluster.Scheme, connect.Options{
		BaseURL: baseURL, Token: token, ClusterID: "ui-test-cluster", Version: "ui-test",
		RunOutput: connect.AgentletOutput{Locator: &agentregistry.PodLocator{Client: kube, SecretName: agent.TokenSecretName}},
	})
}
