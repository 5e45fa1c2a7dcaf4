package certs

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestIssueAndVerify(t *testing.T) {
	ca, err := NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServing("svc", []string{"agentkube-manager.agentkube-system.svc", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := Pool(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serving.Cert.Verify(x509.VerifyOptions{DNSName: "agentkube-manager.agentkube-system.svc", Roots: pool}); err != nil {
		t.Fatalf("serving cert does not verify for its DNS name: %v", err)
	}
	if _, err := serving.Cert.Verify(x509.VerifyOptions{DNSName: "other.svc", Roots: pool}); err == nil {
		t.Fatal("serving cert verified for a name it does not carry")
	}
	client, err := ca.IssueClient("alice", []string{"devs"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if client.Cert.Subject.CommonName != "alice" || client.Cert.Subject.Organization[0] != "devs" {
		t.Fatalf("client subject = %v", client.Cert.Subject)
	}
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client cert does not verify: %v", err)
	}
	parsed, err := ParseKeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(parsed.CertPEM, parsed.KeyPEM); err != nil {
		t.Fatalf("round-tripped pair is not usable for TLS: %v", err)
	}
	if _, err := ParseKeyPair([]byte("junk"), serving.KeyPEM); err == nil {
		t.Fatal("junk certificate accepted")
	}
}
