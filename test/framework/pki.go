package framework

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/exo-in-go/exo/pkg/certs"
)

// Names kube-apiserver's front-proxy client certificate carries; aggregated servers
// accept X-Remote-* headers only from a client presenting it.
const FrontProxyClientName = "front-proxy-client"

// PKI is the certificate material of a test cluster beyond envtest's own serving and
// client certificates.
type PKI struct {
	// FrontProxyCA signs FrontProxyClient; kube-apiserver publishes it in the
	// extension-apiserver-authentication ConfigMap as requestheader-client-ca-file.
	FrontProxyCA     *certs.KeyPair
	FrontProxyClient *certs.KeyPair
	// KubeletClientCA signs KubeletClient, the certificate kube-apiserver presents to
	// kubelets (pods/exec, pods/log); a node verifies callers against it.
	KubeletClientCA *certs.KeyPair
	KubeletClient   *certs.KeyPair
	// KubeletServingCA is what kube-apiserver trusts for kubelet serving certificates;
	// a node issues its serving certificate from it.
	KubeletServingCA *certs.KeyPair

	files map[string]string
}

const pkiValidity = 7 * 24 * time.Hour

func newPKI(dir string) (*PKI, error) {
	p := &PKI{files: map[string]string{}}
	var err error
	if p.FrontProxyCA, err = certs.NewCA("front-proxy-ca", pkiValidity); err != nil {
		return nil, err
	}
	if p.FrontProxyClient, err = p.FrontProxyCA.IssueClient(FrontProxyClientName, nil, pkiValidity); err != nil {
		return nil, err
	}
	if p.KubeletClientCA, err = certs.NewCA("kubelet-client-ca", pkiValidity); err != nil {
		return nil, err
	}
	if p.KubeletClient, err = p.KubeletClientCA.IssueClient("kube-apiserver-kubelet-client", []string{"system:masters"}, pkiValidity); err != nil {
		return nil, err
	}
	if p.KubeletServingCA, err = certs.NewCA("kubelet-serving-ca", pkiValidity); err != nil {
		return nil, err
	}
	pkiDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", pkiDir, err)
	}
	write := func(name string, data []byte) error {
		path := filepath.Join(pkiDir, name)
		p.files[name] = path
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return nil
	}
	for name, data := range map[string][]byte{
		"front-proxy-ca.crt":     p.FrontProxyCA.CertPEM,
		"front-proxy-client.crt": p.FrontProxyClient.CertPEM,
		"front-proxy-client.key": p.FrontProxyClient.KeyPEM,
		"kubelet-client.crt":     p.KubeletClient.CertPEM,
		"kubelet-client.key":     p.KubeletClient.KeyPEM,
		"kubelet-serving-ca.crt": p.KubeletServingCA.CertPEM,
	} {
		if err := write(name, data); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// apiServerFlags configure aggregation (the front proxy) and the kubelet client.
func (p *PKI) apiServerFlags() map[string][]string {
	return map[string][]string{
		"requestheader-client-ca-file":       {p.files["front-proxy-ca.crt"]},
		"requestheader-allowed-names":        {FrontProxyClientName},
		"requestheader-username-headers":     {"X-Remote-User"},
		"requestheader-uid-headers":          {"X-Remote-Uid"},
		"requestheader-group-headers":        {"X-Remote-Group"},
		"requestheader-extra-headers-prefix": {"X-Remote-Extra-"},
		"proxy-client-cert-file":             {p.files["front-proxy-client.crt"]},
		"proxy-client-key-file":              {p.files["front-proxy-client.key"]},
		"kubelet-client-certificate":         {p.files["kubelet-client.crt"]},
		"kubelet-client-key":                 {p.files["kubelet-client.key"]},
		"kubelet-certificate-authority":      {p.files["kubelet-serving-ca.crt"]},
		"kubelet-preferred-address-types":    {"InternalIP"},
	}
}
