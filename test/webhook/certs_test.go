package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"github.com/exo-in-go/exo/pkg/certs"
)

const serviceDNSName = serviceName + "." + systemNamespace + ".svc"

// TestBootstrapFromEmptySecret checks what TestMain set up from an empty Secret and a
// webhook configuration and APIService without caBundle: the rotator filled the
// Secret, injected a bundle into every webhook and the APIService, and both servers
// present a certificate that the injected bundles verify under the Service's name.
func TestBootstrapFromEmptySecret(t *testing.T) {
	ctx := testContext(t, time.Minute)
	secret, err := cluster.Kube.CoreV1().Secrets(systemNamespace).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{certs.SecretKeyCACert, certs.SecretKeyCAKey, certs.SecretKeyServingCert, certs.SecretKeyServingKey, certs.SecretKeyCABundle} {
		if len(secret.Data[key]) == 0 {
			t.Errorf("Secret lacks %s", key)
		}
	}

	vwc, err := cluster.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, vwcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range vwc.Webhooks {
		leaf := dialVerified(t, webhookAddr(), w.ClientConfig.CABundle)
		if err := leaf.VerifyHostname(serviceDNSName + ".cluster.local"); err != nil {
			t.Errorf("webhook %s: %v", w.Name, err)
		}
	}

	apiService, err := cluster.Aggregator.ApiregistrationV1().APIServices().Get(ctx, apiServiceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dialVerified(t, fmt.Sprintf("127.0.0.1:%d", apiPort), apiService.Spec.CABundle)
	if !apiServiceAvailable(apiService) {
		t.Fatalf("APIService %s is not Available: %+v", apiServiceName, apiService.Status.Conditions)
	}
	if err := getAggregatedDiscovery(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRotationKeepsTrust admits a Tool and calls the aggregated API through
// kube-apiserver every 100 ms while the CA that was current at the start is replaced
// and then retired from the bundles (the lifetimes of TestMain make that take at most
// about 35 s). Not one request may fail.
func TestRotationKeepsTrust(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 3*time.Minute)
	ns := cluster.CreateNamespace(t)
	createCredentials(ctx, t, ns, "db-creds")
	tools := cluster.Agentkube.AgentkubeV1alpha1().Tools(ns)

	initial, err := currentCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var (
		requests, failures int
		promotedTo         *x509.Certificate
		retired            bool
		cas                = map[string]bool{}
		deadline           = time.Now().Add(90 * time.Second)
	)
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for i := 0; !retired; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no complete CA rotation within 90 s (initial CA %s, promoted to %v, retired %v)",
				initial.Subject.CommonName, promotedTo != nil, retired)
		}
		<-ticker.C

		requests += 2
		if _, err := tools.Create(ctx, postgresTool(fmt.Sprintf("tool-%04d", i), "db-creds", "password"), metav1.CreateOptions{}); err != nil {
			failures++
			t.Errorf("Tool create %d failed: %v", i, err)
		}
		if err := getAggregatedDiscovery(ctx); err != nil {
			failures++
			t.Errorf("aggregated API call %d failed: %v", i, err)
		}

		ca, err := currentCA(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cas[string(ca.Raw)] = true
		if promotedTo == nil && !ca.Equal(initial) {
			promotedTo = ca
			t.Logf("after %d rounds: CA %s promoted, replacing %s", i, ca.Subject.CommonName, initial.Subject.CommonName)
		}
		if promotedTo != nil {
			inWebhook, inAPIService, err := injectedHas(ctx, initial)
			if err != nil {
				t.Fatal(err)
			}
			if !inWebhook && !inAPIService {
				retired = true
				t.Logf("after %d rounds: CA %s retired from both bundles", i, initial.Subject.CommonName)
			}
		}
	}
	t.Logf("%d requests across %d CAs, %d failures", requests, len(cas), failures)
	if failures > 0 {
		t.Fatalf("%d of %d requests failed across the rotation", failures, requests)
	}

	// The servers really moved on: the certificates they present now come from a CA
	// other than the initial one (which no bundle trusts any more).
	for _, addr := range []string{webhookAddr(), fmt.Sprintf("127.0.0.1:%d", apiPort)} {
		leaf := dialLeaf(t, addr)
		if leaf.Issuer.CommonName == initial.Subject.CommonName {
			t.Errorf("%s still serves a certificate from the retired CA", addr)
		}
	}
}

func currentCA(ctx context.Context) (*x509.Certificate, error) {
	secret, err := cluster.Kube.CoreV1().Secrets(systemNamespace).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(secret.Data[certs.SecretKeyCACert])
	if block == nil {
		return nil, fmt.Errorf("no CA in Secret %s", secretName)
	}
	return x509.ParseCertificate(block.Bytes)
}

// injectedHas reports whether ca is in the webhook configuration's and the
// APIService's bundles.
func injectedHas(ctx context.Context, ca *x509.Certificate) (inWebhook, inAPIService bool, err error) {
	vwc, err := cluster.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, vwcName, metav1.GetOptions{})
	if err != nil {
		return false, false, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	for _, w := range vwc.Webhooks {
		inWebhook = inWebhook || bytes.Contains(w.ClientConfig.CABundle, caPEM)
	}
	svc, err := cluster.Aggregator.ApiregistrationV1().APIServices().Get(ctx, apiServiceName, metav1.GetOptions{})
	if err != nil {
		return false, false, err
	}
	return inWebhook, bytes.Contains(svc.Spec.CABundle, caPEM), nil
}

func getAggregatedDiscovery(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, err := cluster.Kube.Discovery().RESTClient().Get().AbsPath("/apis", apiGroup, apiVersion).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("GET /apis/%s/%s through kube-apiserver: %w", apiGroup, apiVersion, err)
	}
	if !strings.Contains(string(body), `"agents"`) {
		return fmt.Errorf("unexpected discovery document: %s", body)
	}
	return nil
}

func apiServiceAvailable(svc *apiregv1.APIService) bool {
	for _, c := range svc.Status.Conditions {
		if c.Type == apiregv1.Available {
			return c.Status == apiregv1.ConditionTrue
		}
	}
	return false
}

// dialVerified connects to addr as kube-apiserver would to the Service: trusting
// only bundle and checking the Service's DNS name. It returns the served leaf.
func dialVerified(t *testing.T, addr string, bundle []byte) *x509.Certificate {
	t.Helper()
	pool, err := certs.Pool(bundle)
	if err != nil {
		t.Fatalf("bundle for %s: %v", addr, err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: pool, ServerName: serviceDNSName, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to %s with the injected bundle: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// dialLeaf returns the certificate addr serves, without verifying it.
func dialLeaf(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // only reads the served certificate
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// TestWatcherFeedsAPIServerServing plugs the Watcher into k8s.io/apiserver's dynamic
// serving certificate controller, as the aggregated API server does
// (SecureServingInfo.Cert), and checks that the controller serves the Watcher's
// certificate and follows it when the rotator renews it.
func TestWatcherFeedsAPIServerServing(t *testing.T) {
	t.Parallel()
	controller := dynamiccertificates.NewDynamicServingCertificateController(&tls.Config{MinVersion: tls.VersionTLS12}, nil, watcher, nil, nil)
	watcher.AddListener(controller)
	if err := controller.RunOnce(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		controller.Run(1, stop)
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})

	served := func() *x509.Certificate {
		cfg, err := controller.GetConfigForClient(&tls.ClientHelloInfo{ServerName: serviceDNSName})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	// The serving certificate lives 20 s and is renewed 8 s before expiry, so the
	// controller must show the Watcher's certificate and then a renewed one.
	ctx := testContext(t, time.Minute)
	var first *x509.Certificate
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		first = served()
		return first.Equal(watcher.Current()), nil
	})
	if err != nil {
		t.Fatalf("the apiserver serving controller does not serve the Watcher's certificate: %v", err)
	}
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		cur := served()
		return !cur.Equal(first) && cur.Equal(watcher.Current()), nil
	})
	if err != nil {
		t.Fatalf("the apiserver serving controller did not follow the renewed certificate: %v", err)
	}
}
