package agentlet

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// reloadInterval bounds how often the certificate files are read again. The kubelet
// refreshes a Secret volume within its sync period (a minute or two); the renewal
// margin (a third of the certificate's life) covers both.
const reloadInterval = 10 * time.Second

// certReloader serves the key pair in certFile and keyFile and picks up a renewed
// pair when the files change, without a restart. A pair that does not load (a
// half-written update, a key that does not match) is ignored and the last good one
// served.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu              sync.Mutex
	cert            *tls.Certificate
	certPEM, keyPEM []byte
	checked         time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) reload() error {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return fmt.Errorf("read TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return fmt.Errorf("read TLS key: %w", err)
	}
	r.checked = r.now()
	if bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
		return nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load TLS key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certPEM, r.keyPEM = &pair, certPEM, keyPEM
	r.log.Info("Loaded TLS certificate", "names", pair.Leaf.DNSNames, "notAfter", pair.Leaf.NotAfter, "issuer", pair.Leaf.Issuer.CommonName)
	return nil
}

// GetCertificate is a tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now().Sub(r.checked) >= reloadInterval {
		if err := r.reload(); err != nil {
			r.log.Warn("Keeping the last TLS certificate", "err", err)
		}
	}
	return r.cert, nil
}

// tlsConfig is the agentlet's server configuration: TLS 1.3 only.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}
