// Package webhook_test runs agentkube-manager's admission webhook and certificate
// rotation against a real kube-apiserver: kube-apiserver calls the webhook through an
// ExternalName Service, and reaches a small aggregated API server that serves the
// same rotating certificate, with only the caBundles the rotator injects.
package webhook_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/exo-in-go/exo/pkg/certs"
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
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	if cluster, err = framework.Start(ctx, framework.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "starting test cluster:", err)
		return 1
	}
	defer func() { _ = cluster.Stop() }()

	stop, err := startManager(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	return m.Run()
}

// startManager installs what the shipped manifests would (an empty Secret, the
// webhook configuration and an APIService, both without caBundle), then runs a
// controller-runtime manager with certs.AddToManager and webhook.AddToManager and an
// aggregated API server on the same certificate, and waits until kube-apiserver
// trusts both.
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
	mgr, err := manager.New(cluster.Config, manager.Options{
		Scheme:                 cluster.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		_ = apiListener.Close()
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if watcher, err = certs.AddToManager(mgr, certOptions); err != nil {
		_ = apiListener.Close()
		return nil, err
	}
	if _, err := webhook.AddToManager(mgr, webhook.Options{
		Host:                  "127.0.0.1",
		Port:                  webhookPort,
		Certificates:          watcher,
		ManagerServiceAccount: managerUser,
		BreakGlassGroups:      []string{breakGlassGroup},
	}); err != nil {
		_ = apiListener.Close()
		return nil, err
	}

	apiServer := newAggregatedServer(watcher)
	mgrCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := mgr.Start(mgrCtx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := apiServer.ServeTLS(apiListener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "aggregated API server:", err)
		}
	}()
	stop = func() {
		shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = apiServer.Shutdown(shutdownCtx)
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

// newAggregatedServer is a minimal aggregated API server for subresources.agentkube.io
// that serves the Watcher's certificate. Keep-alives are off so that every request
// from kube-apiserver is a fresh TLS handshake against the current certificate and
// the injected bundle.
func newAggregatedServer(w *certs.Watcher) *http.Server {
	mux := http.NewServeMux()
	discovery := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: apiGroup + "/" + apiVersion,
		APIResources: []metav1.APIResource{{Name: "pings", Kind: "Ping", Namespaced: false, Verbs: []string{"get"}}},
	}
	mux.HandleFunc("GET /apis/"+apiGroup+"/"+apiVersion, func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(discovery)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			GetCertificate: w.GetCertificate,
			MinVersion:     tls.VersionTLS12,
			// Ask for kube-apiserver's front-proxy certificate, as a real aggregated
			// server does; this one does not need it.
			ClientAuth: tls.RequestClientCert,
		},
	}
	srv.SetKeepAlivesEnabled(false)
	return srv
}

// webhookAddr is where the test webhook listens, for direct TLS checks.
func webhookAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(webhookPort)) }

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
