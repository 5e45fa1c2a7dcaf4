// Package artifacts tests the shipped manifests and Helm charts: the charts with default
// values render exactly the objects in artifacts/ (field by field), and both apply to a
// real kube-apiserver, first with --dry-run=server and then for real (kubectl for
// artifacts/, helm install for the charts).
package artifacts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exo-in-go/exo/test/framework"
)

// env is the package's shared environment (see TestMain).
var env struct {
	cluster *framework.Cluster
	// helm is the helm binary built by hack/build-helm.sh.
	helm string
	// helmHome keeps helm's cache, config and data out of $HOME.
	helmHome string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	out, err := exec.CommandContext(ctx, filepath.Join(framework.RepoRoot(), "hack", "build-helm.sh")).Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "building helm with hack/build-helm.sh:", err)
		return 1
	}
	env.helm = strings.TrimSpace(string(out))
	if env.helmHome, err = os.MkdirTemp("", "exo-helm-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(env.helmHome)

	c, err := framework.Start(ctx, framework.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting kube-apiserver:", err)
		return 1
	}
	env.cluster = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping kube-apiserver:", err)
	}
	return code
}

// repoPath is a path under the repository root.
func repoPath(elem ...string) string {
	return filepath.Join(append([]string{framework.RepoRoot()}, elem...)...)
}

// runHelm runs the built helm against the test cluster and returns its standard output.
func runHelm(ctx context.Context, args ...string) (string, error) {
	return runHelmOn(ctx, env.cluster.KubeconfigPath, args...)
}

// runHelmOn runs the built helm against the cluster of kubeconfig.
func runHelmOn(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.helm, args...)
	cmd.Env = []string{
		"HOME=" + env.helmHome,
		"PATH=/usr/bin:/bin",
		"HELM_CACHE_HOME=" + filepath.Join(env.helmHome, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(env.helmHome, "config"),
		"HELM_DATA_HOME=" + filepath.Join(env.helmHome, "data"),
		"KUBECONFIG=" + kubeconfig,
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// renderChart renders a chart under charts/ with helm template and the given --set values.
func renderChart(ctx context.Context, chart string, set ...string) (string, error) {
	args := []string{"template", chart, repoPath("charts", chart)}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return runHelm(ctx, args...)
}

// renderChartObjects is renderChart, parsed and indexed.
func renderChartObjects(ctx context.Context, chart string, set ...string) (objectSet, error) {
	out, err := renderChart(ctx, chart, set...)
	if err != nil {
		return nil, err
	}
	objs, err := parseManifests(strings.NewReader(out), "chart "+chart)
	if err != nil {
		return nil, err
	}
	return index(objs)
}
