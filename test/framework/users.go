package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// NewUser provisions a client certificate for a user with the given groups and returns
// its client configuration and a kubeconfig file. What the user may do is up to RBAC:
// bind it, or put it in a group that is bound.
func (c *Cluster) NewUser(name string, groups ...string) (*rest.Config, string, error) {
	u, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, "", fmt.Errorf("provisioning user %q: %w", name, err)
	}
	path, err := c.writeKubeconfig("user-"+name, u)
	if err != nil {
		return nil, "", err
	}
	return rest.CopyConfig(u.Config()), path, nil
}

// User is NewUser for tests.
func (c *Cluster) User(t testing.TB, name string, groups ...string) (*rest.Config, string) {
	t.Helper()
	cfg, path, err := c.NewUser(name, groups...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, path
}

func (c *Cluster) writeKubeconfig(name string, u *envtest.AuthenticatedUser) (string, error) {
	data, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("rendering kubeconfig for %s: %w", name, err)
	}
	path := filepath.Join(c.Dir, strings.ReplaceAll(name, ":", "_")+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

// CreateNamespace makes a namespace with a unique name and deletes it when the test
// ends.
func (c *Cluster) CreateNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "test-" + rand.String(8)}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Kube.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// EnsureNamespace creates a namespace if it does not exist.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string) error {
	_, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// waitForExtensionAuthConfig waits for kube-apiserver to publish the front-proxy CA
// that aggregated servers read to authenticate requests it forwards.
func (c *Cluster) waitForExtensionAuthConfig(ctx context.Context) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		cm, err := c.Kube.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return cm.Data["requestheader-client-ca-file"] != "", nil
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-system/extension-apiserver-authentication: %w", err)
	}
	return nil
}

// waitForCRDOpenAPI waits until kube-apiserver publishes the agentkube.io schemas in
// OpenAPI v3, which happens a moment after the CRDs are Established; kubectl explain
// and server-side field validation read from there.
func (c *Cluster) waitForCRDOpenAPI(ctx context.Context) error {
	kinds := []string{"Agent", "AgentRun", "Tool", "MCP", "LLMGateway", "Claw"}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		body, err := c.Kube.Discovery().RESTClient().Get().AbsPath("/openapi/v3/apis/agentkube.io/v1alpha1").DoRaw(ctx)
		if err != nil {
			return false, nil
		}
		for _, kind := range kinds {
			if !strings.Contains(string(body), `"io.agentkube.v1alpha1.`+kind+`"`) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the agentkube.io OpenAPI schemas: %w", err)
	}
	return nil
}

// RunMain is a TestMain for packages that share one cluster: it starts the cluster into
// *cluster, runs the tests and stops it, and returns the exit code for os.Exit.
func RunMain(m *testing.M, opts Options, cluster **Cluster) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	c, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting test cluster:", err)
		return 1
	}
	*cluster = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping test cluster:", err)
	}
	return code
}
