package agentlet

import (
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/certs"
)

// TestCertReloaderPicksUpRenewedPair: a renewal rewrites the mounted files; the next
// handshake after the reload interval serves the new pair, and a broken pair (a
// half-written update) keeps the last good one.
func TestCertReloaderPicksUpRenewedPair(t *testing.T) {
	ca, err := certs.NewCA("test-agentlet-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(certPEM, keyPEM []byte) {
		t.Helper()
		if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	issue := func() *certs.KeyPair {
		kp, err := certs.IssueAgentletCertificate(ca, "a.ns.agentlet.agentkube.io", time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	served := func(r *certReloader) *x509.Certificate {
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	first, second := issue(), issue()
	write(first.CertPEM, first.KeyPEM)
	r, err := newCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	if !served(r).Equal(first.Cert) {
		t.Fatal("not serving the first certificate")
	}
	write(second.CertPEM, second.KeyPEM)
	if !served(r).Equal(first.Cert) {
		t.Fatal("reloaded before the interval")
	}
	now = now.Add(reloadInterval)
	if !served(r).Equal(second.Cert) {
		t.Fatal("the renewed certificate is not served after the interval")
	}
	write(first.CertPEM, second.KeyPEM) // mismatched pair
	now = now.Add(reloadInterval)
	if !served(r).Equal(second.Cert) {
		t.Fatal("a broken pair replaced the last good one")
	}
	if _, err := newCertReloader(filepath.Join(dir, "missing"), keyFile, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("started without a certificate")
	}
}
