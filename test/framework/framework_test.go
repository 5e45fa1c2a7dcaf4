package framework_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/test/framework"
)

var cluster *framework.Cluster

func TestMain(m *testing.M) {
	os.Exit(framework.RunMain(m, framework.Options{}, &cluster))
}

// TestAggregatedServerThroughKubeAPIServer registers a small TLS server as an aggregated
// API and reads from it through kube-apiserver, which proves the front-proxy and
// ExternalName wiring of the framework.
func TestAggregatedServerThroughKubeAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const group, version, ns, svc = "widgets.test.exo.dev", "v1", "widgets-system", "widgets"
	ca, err := certs.NewCA("widgets-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServing(svc, []string{svc + "." + ns + ".svc", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	frontProxyPool, err := certs.Pool(cluster.PKI.FrontProxyCA.CertPEM)
	if err != nil {
		t.Fatal(err)
	}

	users := make(chan string, 16)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/"+group+"/"+version, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, metav1.APIResourceList{
			TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
			GroupVersion: group + "/" + version,
			APIResources: []metav1.APIResource{{Name: "widgets", Kind: "Widget", Namespaced: false, Verbs: []string{"get"}}},
		})
	})
	mux.HandleFunc("GET /apis/"+group+"/"+version+"/widgets/{name}", func(w http.ResponseWriter, r *http.Request) {
		// Identity headers count only from kube-apiserver's front-proxy certificate.
		user := ""
		if len(r.TLS.PeerCertificates) > 0 && r.TLS.PeerCertificates[0].Subject.CommonName == framework.FrontProxyClientName {
			user = r.Header.Get("X-Remote-User")
		}
		users <- user
		writeJSON(w, map[string]any{
			"apiVersion": group + "/" + version, "kind": "Widget",
			"metadata": map[string]any{"name": r.PathValue("name")},
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{pair},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    frontProxyPool,
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	api := framework.AggregatedAPI{
		Group: group, Version: version, Namespace: ns, Service: svc,
		Port:     int32(ln.Addr().(*net.TCPAddr).Port),
		CABundle: ca.CertPEM,
	}
	if err := cluster.RegisterAggregatedAPI(ctx, api); err != nil {
		t.Fatal(err)
	}

	_, kubeconfig := cluster.User(t, "widget-reader", "system:masters")
	out, _, err := cluster.Kubectl(ctx, kubeconfig, "get", "--raw", "/apis/"+group+"/"+version+"/widgets/blue")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("response is not JSON: %v: %q", err, out)
	}
	if name := got["metadata"].(map[string]any)["name"]; name != "blue" {
		t.Fatalf("aggregated server answered for %v, want blue", name)
	}
	// Discovery requests from the aggregator can interleave; find ours.
	for {
		select {
		case u := <-users:
			if u == "widget-reader" {
				return
			}
			if u != "" && !strings.HasPrefix(u, "system:") {
				t.Fatalf("aggregated server saw user %q, want widget-reader", u)
			}
		case <-ctx.Done():
			t.Fatal("aggregated server never saw the caller's identity")
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
