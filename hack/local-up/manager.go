package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/exo-in-go/exo/test/framework"
)

const (
	managerNamespace = "agentkube-system"
	managerService   = "agentkube-manager"
	// managerUser is the identity the manager runs as locally: RBAC matches
	// ServiceAccount subjects by this username, so the shipped ClusterRoleBindings
	// apply to it exactly as in a cluster, and the webhook lets it exec.
	managerUser = "system:serviceaccount:agentkube-system:agentkube-manager"
)

// The manager's ports on 127.0.0.1; flags so that tests can pick free ones.
var (
	webhookPort = flag.Int("webhook-port", 9443, "port of the manager's admission webhook")
	apiPort     = flag.Int("api-port", 8082, "port of the manager's aggregated API")
	metricsPort = flag.Int("metrics-port", 8080, "port of the manager's /metrics")
	probePort   = flag.Int("probe-port", 8081, "port of the manager's /healthz and /readyz")
)

// installManagerObjects applies the shipped RBAC, webhook configuration and APIService,
// with one local difference: kube-apiserver reaches the manager through a Service of
// type ExternalName → localhost, which cannot map ports, so the registrations name the
// ports the manager listens on (9443 rather than the Service's 443 for the webhook).
func installManagerObjects(ctx context.Context, cluster *framework.Cluster, root string) error {
	if err := cluster.EnsureNamespace(ctx, managerNamespace); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: managerService, Namespace: managerNamespace},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports: []corev1.ServicePort{
				{Name: "webhook", Port: int32(*webhookPort)},
				{Name: "api", Port: int32(*apiPort)},
			},
		},
	}
	if _, err := cluster.Kube.CoreV1().Services(managerNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Service %s: %w", managerService, err)
	}
	if _, _, err := cluster.Kubectl(ctx, "", "apply", "-f", filepath.Join(root, "artifacts", "manager", "rbac.yaml")); err != nil {
		return err
	}
	// The registrations name the Service's ports (443 for the webhook, 8082 for the
	// API); point them at the ports the local manager listens on.
	for file, ports := range map[string][2]string{
		"webhook.yaml":        {"port: 443", fmt.Sprintf("port: %d", *webhookPort)},
		"aggregated-api.yaml": {"port: 8082", fmt.Sprintf("port: %d", *apiPort)},
	} {
		data, err := os.ReadFile(filepath.Join(root, "artifacts", "manager", file))
		if err != nil {
			return err
		}
		local := strings.ReplaceAll(string(data), ports[0], ports[1])
		if _, _, err := cluster.KubectlWithInput(ctx, "", strings.NewReader(local), "apply", "-f", "-"); err != nil {
			return err
		}
	}
	return nil
}

// startManager runs agentkube-manager as its ServiceAccount identity, in managed mode
// against the local platform.
func startManager(ctx context.Context, cluster *framework.Cluster, bin, dir string, plat *platform, logw io.Writer) (*process, error) {
	_, kubeconfig, err := cluster.NewUser(managerUser, "system:serviceaccounts", "system:serviceaccounts:"+managerNamespace, "system:authenticated")
	if err != nil {
		return nil, err
	}
	env := []string{
		"AGENTKUBE_MANAGED=true",
		"AGENTKUBE_BASE_URL=" + plat.url,
		"AGENTKUBE_AUTH_TOKEN=" + plat.deployToken,
		"AGENTKUBE_CLUSTER_ID=local",
	}
	args := []string{
		"--kubeconfig", kubeconfig,
		"--authentication-kubeconfig", kubeconfig,
		"--authorization-kubeconfig", kubeconfig,
		"--namespace", managerNamespace,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", *metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", *probePort),
		"--webhook-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", *webhookPort),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", *apiPort),
		"--cert-extra-hosts=localhost,127.0.0.1",
	}
	p, err := startProcess("agentkube-manager", logw, env, filepath.Join(bin, "agentkube-manager"), args...)
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := waitHTTP(waitCtx, p, fmt.Sprintf("http://127.0.0.1:%d/readyz", *probePort), &http.Client{Timeout: 2 * time.Second}); err != nil {
		return p, err
	}
	if err := cluster.WaitForAPIServiceAvailable(ctx, "v1alpha1.subresources.agentkube.io", 2*time.Minute); err != nil {
		return p, err
	}
	return p, nil
}
