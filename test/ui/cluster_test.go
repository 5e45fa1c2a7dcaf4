package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"

	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/connect/connecttest"
	"github.com/exo-in-go/exo/pkg/localnode/localnodetest"
	"github.com/exo-in-go/exo/pkg/manager/app"
	"github.com/exo-in-go/exo/test/framework"
)

// The cluster the dashboard shows: a real kube-apiserver, agentkube-manager
// (pkg/manager/app) with its controllers and certificates, and a localnode that runs Agent pods with the real agentlet.
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
	// agentkube-manager as it ships, without the webhook and the aggregated
	// API (nothing here calls them) and, until a test starts it, the connector.
	st := app.DefaultSettings()
	st.Manager.LeaderElection = false
	st.Manager.MetricsBindAddress, st.Manager.HealthProbeBindAddress = "0", "0"
	st.Manager.RunPollInterval = time.Second
	st.Webhook.Port = 0
	st.API.SecureServing.BindPort = 0
	mgr, err := app.New(st, app.Options{Config: c.Config})
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

// startOperator runs agentkube-manager's tunnel connector as it runs in
// managed mode (leader only there; alone here, beside the controllers of
// TestMain), run output followed in the agentlet, with the given deployment
// token.
func startOperator(t *testing.T, baseURL, token string) {
	t.Helper()
	connecttest.Start(t, cluster.Config, connect.Options{
		BaseURL: baseURL, Token: token, ClusterID: "ui-test-cluster", Version: "ui-test",
	})
}
