package realnode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/test/framework"
)

const pkiValidity = 7 * 24 * time.Hour

// Client identities of the control plane and the node. kube-apiserver reads the user
// from a client certificate's common name and the groups from its organizations; the
// bootstrap RBAC policy binds these names.
var identities = []struct {
	file, user string
	groups     []string
}{
	{"admin", "exo-admin", []string{"system:masters"}},
	{"kube-controller-manager", "system:kube-controller-manager", nil},
	{"kube-scheduler", "system:kube-scheduler", nil},
	{"kube-proxy", "system:kube-proxy", nil},
	// kubelet's user is system:node:<name>; filled in by writePKI.
	{"kubelet", "", []string{"system:nodes"}},
}

// writePKI issues the cluster's certificates into DIR/pki (ECDSA P-256, like
// pkg/certs): one cluster CA for serving and client certificates, including kubelet's
// serving certificate, which kube-apiserver verifies (--kubelet-certificate-authority);
// a front-proxy CA and client for aggregation; the service-account signing key; and a
// kubeconfig per component, pointing at kube-apiserver on 127.0.0.1:6443 inside the
// namespace.
func (c *Cluster) writePKI() error {
	ca, err := certs.NewCA("exo-realnode-ca", pkiValidity)
	if err != nil {
		return err
	}
	frontProxyCA, err := certs.NewCA("exo-realnode-front-proxy-ca", pkiValidity)
	if err != nil {
		return err
	}
	apiServer, err := ca.IssueServing("kube-apiserver", []string{
		"127.0.0.1", NodeIP, apiServiceIP, "localhost", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	}, pkiValidity)
	if err != nil {
		return err
	}
	kubeletServing, err := ca.IssueServing(c.Name, []string{c.Name, NodeIP}, pkiValidity)
	if err != nil {
		return err
	}
	kubeletClient, err := ca.IssueClient("kube-apiserver-kubelet-client", []string{"system:masters"}, pkiValidity)
	if err != nil {
		return err
	}
	frontProxyClient, err := frontProxyCA.IssueClient(framework.FrontProxyClientName, nil, pkiValidity)
	if err != nil {
		return err
	}
	saKey, err := serviceAccountKey()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt":                       ca.CertPEM,
		"ca.key":                       ca.KeyPEM,
		"apiserver.crt":                apiServer.CertPEM,
		"apiserver.key":                apiServer.KeyPEM,
		"kubelet-serving.crt":          kubeletServing.CertPEM,
		"kubelet-serving.key":          kubeletServing.KeyPEM,
		"apiserver-kubelet-client.crt": kubeletClient.CertPEM,
		"apiserver-kubelet-client.key": kubeletClient.KeyPEM,
		"front-proxy-ca.crt":           frontProxyCA.CertPEM,
		"front-proxy-client.crt":       frontProxyClient.CertPEM,
		"front-proxy-client.key":       frontProxyClient.KeyPEM,
		"sa.key":                       saKey,
	}
	for _, id := range identities {
		user := id.user
		if id.file == "kubelet" {
			user = "system:node:" + c.Name
		}
		client, err := ca.IssueClient(user, id.groups, pkiValidity)
		if err != nil {
			return err
		}
		kubeconfig, err := kubeconfigFor(id.file, "https://127.0.0.1:6443", ca.CertPEM, client)
		if err != nil {
			return err
		}
		files[id.file+".kubeconfig"] = kubeconfig
		if id.file == "admin" {
			c.admin = client
			c.ca = ca.CertPEM
		}
	}
	if err := os.MkdirAll(c.path("pki"), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", c.path("pki"), err)
	}
	for name, data := range files {
		if err := os.WriteFile(c.path("pki", name), data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", c.path("pki", name), err)
		}
	}
	return nil
}

// serviceAccountKey is the key kube-apiserver signs service-account tokens with and
// verifies them by (its public half, which it derives from the private key file).
func serviceAccountKey() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the service-account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the service-account key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// kubeconfigFor renders a kubeconfig with the client certificate and the CA inline.
func kubeconfigFor(name, server string, caPEM []byte, client *certs.KeyPair) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["realnode"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: client.CertPEM, ClientKeyData: client.KeyPEM}
	cfg.Contexts["realnode"] = &clientcmdapi.Context{Cluster: "realnode", AuthInfo: name}
	cfg.CurrentContext = "realnode"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("rendering the %s kubeconfig: %w", name, err)
	}
	return data, nil
}

// pkiFile is the path of a file writePKI wrote.
func (c *Cluster) pkiFile(name string) string { return filepath.Join(c.Dir, "pki", name) }
