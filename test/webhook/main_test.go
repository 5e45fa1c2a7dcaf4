// Package webhook_test runs agentkube-manager's admission webhook and certificate
// rotation against a real kube-apiserver: kube-apiserver calls the webhook through an
// ExternalName Service, and reaches the manager's aggregated API server, which serves
// the same rotating certificate, with only the caBundles the rotator injects.
package webhook_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/manager/app"
	"github.com/exo-in-go/exo/pkg/webhook"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/ports"
)

const (
	systemNamespace = "agentkube-system"
	serviceName     = "agentkube-manager"
	secretName      = "agentkube-manager-certs"
	vwcName         = "agentkube-manager"
	apiGroup        = "subresources.agentkube.io"
	apiVersion      = "v1alpha1"
	apiServiceName  = apiVersion + "." + apiGroup
	managerUser     = "system:serviceaccount:agentkube-system:agentkube-manager"
	breakGlassGroup = "agentkube:break-glass"
)

// Lifetimes short enough that the CA rotates every 15 s for the whole run, so every
// test, not only the rotation test, runs across rotations.
var certOptions = certs.Options{
	ExtraHosts:         []string{"localhost", "127.0.0.1"},
	CALifetime:         30 * time.Second,
	CARenewBefore:      15 * time.Second,
	ServingLifetime:    20 * time.Second,
	ServingRenewBefore: 8 * time.Second,
	PropagationDelay:   2 * time.Second,
	ResyncPeriod:       time.Minute,
}

var (
	cluster     *framework.Cluster
	watcher     *certs.Watcher
	webhookPort int
	apiPort     int
)

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, func(ctx context.Context, c *framework.Cluster) (func(), error) {
		cluster = c
		return startManager(ctx)
	}))
}

// startManager installs what the shipped manifests would (an empty Secret, the
// webhook configuration and an APIService, both without caBundle), then runs
// agentkube-manager as app.New assembles it, without its controllers (the tests'
// pods are left alone), with the certificate lifetimes above, and waits until
// kube-apiserver trusts its webhook and aggregated API.
func startManager(ctx context.Context) (stop func(), err error) {
	if webhookPort, err = ports.Pick(); err != nil {
		return nil, err
	}
	apiListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the aggregated API: %w", err)
	}
	apiPort = apiListener.Addr().(*net.TCPAddr).Port
	if err := installManifests(ctx); err != nil {
		_ = apiListener.Close()
		return nil, err
	}

	ctrl.SetLogger(klog.Background())
	st := app.DefaultSettings()
	st.Manager.Namespace = systemNamespace
	st.Manager.LeaderElection = false
	st.Manager.MetricsBindAddress, st.Manager.HealthProbeBindAddress = "0", "0"
	st.Manager.Controllers = nil
	st.Certs = certOptions
	st.Webhook = webhook.Options{
		Host:                  "127.0.0.1",
		Port:                  webhookPort,
		ManagerServiceAccount: managerUser,
		BreakGlassGroups:      []string{breakGlassGroup},
	}
	st.API.SecureServing.Listener = apiListener
	st.API.SecureServing.BindAddress = net.ParseIP("127.0.0.1")
	st.API.SecureServing.BindPort = apiPort
	// Delegated authentication and authorization, which a pod does in-cluster.
	st.API.Authentication.RemoteKubeConfigFile = cluster.KubeconfigPath
	st.API.Authorization.RemoteKubeConfigFile = cluster.KubeconfigPath
	a, err := app.New(st, app.Options{Config: cluster.Config})
	if err != nil {
		_ = apiListener.Close()
		return nil, err
	}
	watcher = a.Certificates

	mgrCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.Start(mgrCtx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	})
	stop = func() {
		cancel()
		wg.Wait()
	}

	if err := cluster.WaitForAPIServiceAvailable(ctx, apiServiceName, 2*time.Minute); err != nil {
		stop()
		return nil, err
	}
	if err := cluster.WaitForManagerWebhooksInjected(ctx, time.Minute); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

func installManifests(ctx context.Context) error {
	if err := cluster.EnsureNamespace(ctx, systemNamespace); err != nil {
		return err
	}
	// ExternalName → localhost: kube-apiserver dials localhost:<service port>, so the
	// ports are the test servers' real ones.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: serviceName, Namespace: systemNamespace},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports: []corev1.ServicePort{
				{Name: "webhook", Port: int32(webhookPort)},
				{Name: "api", Port: int32(apiPort)},
			},
		},
	}
	if _, err := cluster.Kube.CoreV1().Services(systemNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Service: %w", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: systemNamespace}}
	if _, err := cluster.Kube.CoreV1().Secrets(systemNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the empty Secret: %w", err)
	}

	if err := cluster.InstallManagerWebhooks(ctx, webhookPort); err != nil {
		return err
	}

	apiPort32 := int32(apiPort)
	apiService := &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: apiServiceName},
		Spec: apiregv1.APIServiceSpec{
			Group:                apiGroup,
			Version:              apiVersion,
			Service:              &apiregv1.ServiceReference{Namespace: systemNamespace, Name: serviceName, Port: &apiPort32},
			GroupPriorityMinimum: 900,
			VersionPriority:      15,
		},
	}
	if _, err := cluster.Aggregator.ApiregistrationV1().APIServices().Create(ctx, apiService, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating APIService: %w", err)
	}
	return nil
}

// webhookAddr is where the test webhook listens, for direct TLS checks.
func webhookAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(webhookPort)) }

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
