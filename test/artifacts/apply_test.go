package artifacts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestApply installs the runtime and control planes the two documented ways, against
// the real kube-apiserver: every manifest under artifacts/ (samples aside) with kubectl,
// namespaces first, each step with --dry-run=server before it is applied for real; then
// the rendered charts pass --dry-run=server, and helm install adopts the applied objects
// (a chart object that artifacts/ lacks, or one the API rejects, fails the install).
//
// The steps build on each other, so they are sequential subtests of one test. Nothing is
// uninstalled: the cluster goes with the package, and without a namespace controller a
// deleted namespace would stay Terminating.
func TestApply(t *testing.T) {
	ctx := t.Context()
	c := env.cluster
	namespaces := []string{
		repoPath("artifacts", "manager", "namespace.yaml"),
		repoPath("artifacts", "platform", "namespace.yaml"),
	}
	everything := []string{
		repoPath("artifacts", "crds"),
		repoPath("artifacts", "manager"),
		repoPath("artifacts", "platform"),
	}

	apply := func(t *testing.T, dryRun bool, files ...string) string {
		t.Helper()
		args := []string{"apply"}
		if dryRun {
			args = append(args, "--dry-run=server")
		}
		for _, f := range files {
			args = append(args, "-f", f)
		}
		out, _, err := c.Kubectl(ctx, "", args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("artifacts namespaces", func(t *testing.T) {
		apply(t, true, namespaces...)
		apply(t, false, namespaces...)
	})
	t.Run("artifacts dry-run=server", func(t *testing.T) {
		out := apply(t, true, everything...)
		if !strings.Contains(out, "deployment.apps/agentkube-manager created (server dry run)") {
			t.Errorf("dry run did not create the manager Deployment:\n%s", out)
		}
	})
	t.Run("artifacts apply", func(t *testing.T) {
		apply(t, false, everything...)
		objs, err := readManifestFiles(everything...)
		if err != nil {
			t.Fatal(err)
		}
		// Every object is there: kubectl get -f fails on a missing one.
		out, _, err := c.Kubectl(ctx, "", append([]string{"get", "-o", "name"}, fileArgs(everything)...)...)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Fields(out)); n != len(objs) {
			t.Errorf("kubectl get -f artifacts: %d objects, the manifests hold %d:\n%s", n, len(objs), out)
		}
		// Spot-check that the server kept what matters (a defaulting or pruning surprise
		// would show here).
		dep, err := c.Kube.AppsV1().Deployments("agentkube-system").Get(ctx, "agentkube-manager", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ru := dep.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("manager rolling update maxUnavailable: got %+v", ru)
		}
		pdb, err := c.Kube.PolicyV1().PodDisruptionBudgets("agentkube-system").Get(ctx, "agentkube-manager", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pdb.Spec.MinAvailable.IntValue() != 1 {
			t.Errorf("PDB minAvailable: got %v", pdb.Spec.MinAvailable)
		}
	})

	charts := []struct {
		release, chart string
		set            []string
	}{
		{release: "agentkube", chart: "agentkube"},
		{release: "exo", chart: "exo-app", set: []string{"ingress.enabled=true"}},
	}
	for _, ch := range charts {
		t.Run("chart "+ch.chart+" dry-run=server", func(t *testing.T) {
			out, err := renderChart(ctx, ch.chart, ch.set...)
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(t.TempDir(), ch.chart+".yaml")
			if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			apply(t, true, f)
		})
	}
	for _, ch := range charts {
		t.Run("chart "+ch.chart+" helm install", func(t *testing.T) {
			args := []string{"install", ch.release, repoPath("charts", ch.chart),
				"--namespace", "default", "--take-ownership", "--timeout", "1m"}
			for _, s := range ch.set {
				args = append(args, "--set", s)
			}
			if _, err := runHelm(ctx, args...); err != nil {
				t.Fatal(err)
			}
			out, err := runHelm(ctx, "status", ch.release, "--namespace", "default", "-o", "json")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, `"status":"deployed"`) {
				t.Errorf("helm status %s: not deployed:\n%s", ch.release, out)
			}
		})
	}
	t.Run("helm owns the objects", func(t *testing.T) {
		dep, err := c.Kube.AppsV1().Deployments("agentkube-system").Get(ctx, "agentkube-manager", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := dep.Annotations["meta.helm.sh/release-name"]; got != "agentkube" {
			t.Errorf("Deployment agentkube-manager release annotation: got %q", got)
		}
		crd, err := c.Kube.Discovery().ServerResourcesForGroupVersion("agentkube.io/v1alpha1")
		if err != nil || len(crd.APIResources) == 0 {
			t.Errorf("agentkube.io/v1alpha1 discovery: %v", err)
		}
	})
}

func fileArgs(paths []string) []string {
	var args []string
	for _, p := range paths {
		args = append(args, "-f", p)
	}
	return args
}
