package artifacts

import (
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/yaml"

	"github.com/exo-in-go/exo/test/framework"
)

// TestHelmAsDocumented runs docs/install.md's Helm commands as a user types them, with
// default values, on a cluster of its own with nothing installed (the CRDs the framework
// installs are deleted first, so the chart creates them as on a fresh cluster): each chart
// installed into its own namespace created by --create-namespace, upgraded, uninstalled,
// and installed again over the CRDs the first release kept.
//
// The cluster has no controller-manager, so nothing here deletes a namespace (it would
// stay Terminating); the test checks the namespaces survive uninstall, as Helm documents.
func TestHelmAsDocumented(t *testing.T) {
	ctx := t.Context()
	c, err := framework.Start(ctx, framework.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	// kube-apiserver finalizes deleted CRDs itself (no controller-manager needed).
	if _, _, err := c.Kubectl(ctx, "", "delete", "--wait", "-f", repoPath("artifacts", "crds")); err != nil {
		t.Fatal(err)
	}
	helm := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := runHelmOn(ctx, c.KubeconfigPath, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	version := readVersion(t)
	const crd = "agents.agentkube.io"
	// Each step builds on the previous one: stop at the first that fails rather than
	// wait for every later step to time out on a cluster in an unexpected state.
	run := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	run("install agentkube -n agentkube-system --create-namespace", func(t *testing.T) {
		helm(t, "install", "agentkube", repoPath("charts", "agentkube"), "-n", "agentkube-system", "--create-namespace")
		dep, err := c.Kube.AppsV1().Deployments("agentkube-system").Get(ctx, "agentkube-manager", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctr := dep.Spec.Template.Spec.Containers[0]
		if want := "ghcr.io/exo-in-go/agentkube-manager:" + version; ctr.Image != want {
			t.Errorf("manager image %q, want %q", ctr.Image, want)
		}
		if v := envValue(ctr, "AGENTKUBE_IMAGE_REGISTRY"); v != "ghcr.io/exo-in-go" {
			t.Errorf("AGENTKUBE_IMAGE_REGISTRY %q, want ghcr.io/exo-in-go", v)
		}
		if dep.Annotations["meta.helm.sh/release-namespace"] != "agentkube-system" {
			t.Errorf("Deployment annotations %v", dep.Annotations)
		}
		var got apiextensionsv1.CustomResourceDefinition
		if err := c.Client.Get(ctx, types.NamespacedName{Name: crd}, &got); err != nil {
			t.Errorf("CRD %s: %v", crd, err)
		}
		if _, err := c.Kube.CoreV1().Namespaces().Get(ctx, "agentkube-system", metav1.GetOptions{}); err != nil {
			t.Errorf("namespace agentkube-system: %v", err)
		}
	})

	run("install exo -n exo --create-namespace", func(t *testing.T) {
		helm(t, "install", "exo", repoPath("charts", "exo-app"), "-n", "exo", "--create-namespace")
		dep, err := c.Kube.AppsV1().Deployments("exo").Get(ctx, "exo-app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := "ghcr.io/exo-in-go/exo-app:" + version; dep.Spec.Template.Spec.Containers[0].Image != want {
			t.Errorf("exo-app image %q, want %q", dep.Spec.Template.Spec.Containers[0].Image, want)
		}
	})

	run("upgrade keeps the certificates the manager wrote", func(t *testing.T) {
		// What the leader does at start: fill the Secret the chart ships empty.
		certs, err := c.Kube.CoreV1().Secrets("agentkube-system").Get(ctx, "agentkube-manager-certs", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		certs.Data = map[string][]byte{"ca.crt": []byte("written by the manager")}
		if _, err := c.Kube.CoreV1().Secrets("agentkube-system").Update(ctx, certs, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		helm(t, "upgrade", "agentkube", repoPath("charts", "agentkube"), "-n", "agentkube-system", "--reuse-values", "--set", "manager.replicas=3")
		dep, err := c.Kube.AppsV1().Deployments("agentkube-system").Get(ctx, "agentkube-manager", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
			t.Errorf("replicas after upgrade: %v", dep.Spec.Replicas)
		}
		certs, err = c.Kube.CoreV1().Secrets("agentkube-system").Get(ctx, "agentkube-manager-certs", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(certs.Data["ca.crt"]) != "written by the manager" {
			t.Errorf("agentkube-manager-certs after upgrade: %v", certs.Data)
		}
		if out := helm(t, "status", "agentkube", "-n", "agentkube-system", "-o", "json"); !strings.Contains(out, `"version":2`) {
			t.Errorf("helm status after upgrade: not revision 2:\n%s", out)
		}
	})

	run("uninstall agentkube in the documented order", func(t *testing.T) {
		// Steps 1 and 2 of docs/install.md's Uninstall, then helm uninstall.
		for _, args := range [][]string{
			{"delete", "apiservice", "v1alpha1.subresources.agentkube.io"},
			{"delete", "validatingwebhookconfiguration", "agentkube-manager"},
		} {
			if _, _, err := c.Kubectl(ctx, "", args...); err != nil {
				t.Fatal(err)
			}
		}
		helm(t, "uninstall", "agentkube", "-n", "agentkube-system", "--wait", "--timeout", "1m")
		checkRuntimePlaneGone(t, c)
		var got apiextensionsv1.CustomResourceDefinition
		if err := c.Client.Get(ctx, types.NamespacedName{Name: crd}, &got); err != nil {
			t.Errorf("CRD %s after uninstall (kept by helm.sh/resource-policy: keep): %v", crd, err)
		}
		ns, err := c.Kube.CoreV1().Namespaces().Get(ctx, "agentkube-system", metav1.GetOptions{})
		if err != nil || ns.Status.Phase != corev1.NamespaceActive {
			t.Errorf("namespace agentkube-system after uninstall: %v, %v", ns.Status.Phase, err)
		}
	})

	run("install again over the kept CRDs, then a plain helm uninstall", func(t *testing.T) {
		helm(t, "install", "agentkube", repoPath("charts", "agentkube"), "-n", "agentkube-system", "--create-namespace")
		if _, err := c.Kube.AppsV1().Deployments("agentkube-system").Get(ctx, "agentkube-manager", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		// Without the kubectl steps Helm deletes the APIService and the webhook
		// configuration itself.
		helm(t, "uninstall", "agentkube", "-n", "agentkube-system", "--wait", "--timeout", "1m")
		checkRuntimePlaneGone(t, c)
	})

	run("uninstall exo", func(t *testing.T) {
		// No --wait: the PVC keeps its kubernetes.io/pvc-protection finalizer until a
		// controller-manager removes it, which this cluster lacks.
		helm(t, "uninstall", "exo", "-n", "exo")
		if _, err := c.Kube.AppsV1().Deployments("exo").Get(ctx, "exo-app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Deployment exo/exo-app after uninstall: %v", err)
		}
	})
}

// checkRuntimePlaneGone: the release's objects that kube-apiserver keeps calling, and the
// manager itself, are gone.
func checkRuntimePlaneGone(t *testing.T, c *framework.Cluster) {
	t.Helper()
	ctx := t.Context()
	if _, err := c.Kube.AppsV1().Deployments("agentkube-system").Get(ctx, "agentkube-manager", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment agentkube-manager after uninstall: %v", err)
	}
	if _, err := c.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "agentkube-manager", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ValidatingWebhookConfiguration agentkube-manager after uninstall: %v", err)
	}
	var svc apiregv1.APIService
	if err := c.Client.Get(ctx, types.NamespacedName{Name: "v1alpha1.subresources.agentkube.io"}, &svc); !apierrors.IsNotFound(err) {
		t.Errorf("APIService after uninstall: %v", err)
	}
	if _, err := c.Kube.RbacV1().ClusterRoles().Get(ctx, "agentkube-manager", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRole agentkube-manager after uninstall: %v", err)
	}
}

func envValue(ctr corev1.Container, name string) string {
	for _, e := range ctr.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// readVersion reads the VERSION file: the tag of every image the project builds.
func readVersion(t *testing.T) string {
	t.Helper()
	v, err := os.ReadFile(repoPath("VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

// TestChartsUseTheProjectsImages: both charts default to the project's registry and to
// the VERSION tag make images gives every image, and say so in appVersion; nothing points
// at another vendor's registry.
func TestChartsUseTheProjectsImages(t *testing.T) {
	version := readVersion(t)
	for _, chart := range []string{"agentkube", "exo-app"} {
		var meta struct {
			AppVersion string `json:"appVersion"`
		}
		var values struct {
			Image struct {
				Registry string `json:"registry"`
				Tag      string `json:"tag"`
				Manager  struct {
					Tag string `json:"tag"`
				} `json:"manager"`
			} `json:"image"`
		}
		for file, into := range map[string]any{"Chart.yaml": &meta, "values.yaml": &values} {
			data, err := os.ReadFile(repoPath("charts", chart, file))
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(data, into); err != nil {
				t.Fatalf("charts/%s/%s: %v", chart, file, err)
			}
		}
		if meta.AppVersion != version {
			t.Errorf("charts/%s appVersion %q, VERSION %q", chart, meta.AppVersion, version)
		}
		if values.Image.Registry != "ghcr.io/exo-in-go" {
			t.Errorf("charts/%s image.registry %q, want ghcr.io/exo-in-go", chart, values.Image.Registry)
		}
		if tag := values.Image.Tag + values.Image.Manager.Tag; tag != version {
			t.Errorf("charts/%s image tag %q, VERSION %q", chart, tag, version)
		}
	}
}
