// Package cluster_test runs the runtime plane's abuse cases of the security review
// (issue 17, items 12, 21 and 22) against a real kube-apiserver: kube-apiserver calls
// agentkube-manager's admission webhook, run in process by app.New with its own
// certificate machinery behind the shipped webhook configurations, exactly as it ships. Each test
// is an attack that must fail.
package cluster_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/manager/app"
	"github.com/exo-in-go/exo/pkg/webhook"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/ports"
)

const (
	systemNamespace = "agentkube-system"
	serviceName     = "agentkube-manager"
	// managerUser is the manager's ServiceAccount as the shipped manifests name it
	// (and as the matchConditions of webhook.yaml spell it).
	managerUser     = webhook.DefaultManagerServiceAccount
	breakGlassGroup = webhook.DefaultBreakGlassGroup
	gcUser          = "system:serviceaccount:kube-system:generic-garbage-collector"
)

var (
	cluster *framework.Cluster
	// certificates is the manager's certificate Watcher: the serving certificate of
	// the webhook, and the agentlet CA (signer and bundle) that item 22 issues and
	// verifies agentlet certificates with.
	certificates *certs.Watcher
)

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, func(ctx context.Context, c *framework.Cluster) (func(), error) {
		cluster = c
		return startWebhook(ctx)
	}))
}

// startWebhook installs what the manifests ship for the webhook (the Service, an empty
// certificate Secret, both webhook configurations without caBundle) and runs
// agentkube-manager as app.New assembles it, its webhook and certificates with their
// defaults, until kube-apiserver trusts it.
func startWebhook(ctx context.Context) (stop func(), err error) {
	port, err := ports.Pick()
	if err != nil {
		return nil, err
	}
	if err := cluster.EnsureNamespace(ctx, systemNamespace); err != nil {
		return nil, err
	}
	// ExternalName → localhost: kube-apiserver dials localhost:<service port>.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: serviceName, Namespace: systemNamespace},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "webhook", Port: int32(port)}},
		},
	}
	if _, err := cluster.Kube.CoreV1().Services(systemNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating Service: %w", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: certs.DefaultSecretName, Namespace: systemNamespace}}
	if _, err := cluster.Kube.CoreV1().Secrets(systemNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating the empty certificate Secret: %w", err)
	}
	if err := cluster.InstallManagerWebhooks(ctx, port); err != nil {
		return nil, err
	}

	ctrl.SetLogger(klog.Background())
	st := webhookSettings()
	st.Webhook.Host, st.Webhook.Port = "127.0.0.1", port
	mgr, err := app.New(st, app.Options{Config: cluster.Config})
	if err != nil {
		return nil, err
	}
	certificates = mgr.Certificates
	mgrCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := mgr.Start(mgrCtx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	})
	stop = func() {
		cancel()
		wg.Wait()
	}
	if err := cluster.WaitForManagerWebhooksInjected(ctx, time.Minute); err != nil {
		stop()
		return nil, err
	}
	// The bundle is injected before the server necessarily serves a certificate from
	// it; the tests start once kube-apiserver gets an answer from the webhook (a
	// dry-run AgentRun create as the admin fails, failure policy Fail, until then).
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(systemNamespace).Create(ctx, &agentkubev1alpha1.AgentRun{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
			Spec:       agentkubev1alpha1.AgentRunSpec{AgentRef: agentkubev1alpha1.LocalObjectReference{Name: "probe"}},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil, nil
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("waiting for kube-apiserver to reach the webhook: %w", err)
	}
	return stop, nil
}

// webhookSettings are agentkube-manager's settings as they ship (the manager's
// username, break-glass group and garbage collector users of the webhook
// included) for one process of several in a test: no leader election, metrics
// or probes, no controllers (the tests' pods are theirs alone), no webhook
// server and no aggregated API (nothing registers it here); the callers turn on
// what they run.
func webhookSettings() *app.Settings {
	st := app.DefaultSettings()
	st.Manager.LeaderElection = false
	st.Manager.MetricsBindAddress, st.Manager.HealthProbeBindAddress = "0", "0"
	st.Manager.Controllers = nil
	st.Certs.ExtraHosts = []string{"localhost", "127.0.0.1"}
	st.Webhook.Port = 0
	st.API.SecureServing.BindPort = 0
	return st
}

// grant binds a Role with rules in ns to the subjects, so that whatever a test user is
// refused below is the webhook's doing, not RBAC's.
func grant(t *testing.T, ns, name string, rules []rbacv1.PolicyRule, subjects ...rbacv1.Subject) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}
	if _, err := cluster.Kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Role %s: %v", name, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   subjects,
	}
	if _, err := cluster.Kube.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating RoleBinding %s: %v", name, err)
	}
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func managerSubject() rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: systemNamespace, Name: "agentkube-manager"}
}

// impersonating is an admin configuration acting as username, the way the manager's
// ServiceAccount or the garbage collector would call.
func impersonating(username string) *rest.Config {
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: username}
	return cfg
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
