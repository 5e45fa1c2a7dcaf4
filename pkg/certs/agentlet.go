package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Agentlet certificates: every Agent's agentlet serves TLS with a leaf of the agentlet
// CA that names the Agent (one DNS SAN, <agent>.<namespace>.agentlet.agentkube.io), and
// the manager's agentlet clients verify that name against the agentlet CA bundle. The
// Rotator keeps the CA in the certificate Secret; the Watcher gives every replica the
// signer and the bundle; the Agent controller issues and renews the leaves.

// AgentletAuthority is what the manager's controllers need of the agentlet CA.
// *Watcher is the production one; StaticAgentletAuthority serves tests.
type AgentletAuthority interface {
	// AgentletCA returns the CA that signs agentlet certificates now (nil while there
	// is none that can sign) and the PEM trust bundle of the agentlet clients
	// (current, staged and retired agentlet CAs; nil while there is none).
	AgentletCA() (signer *KeyPair, bundle []byte)
	// AgentletCAChanges returns a channel that receives a value (coalesced) whenever
	// the signer or the bundle changes; nil when they never change.
	AgentletCAChanges() <-chan struct{}
}

type agentletCA struct {
	signer *KeyPair
	bundle []byte
}

var _ AgentletAuthority = (*Watcher)(nil)

// updateAgentletCA takes the agentlet CA from the Secret. Like the serving
// certificate, unusable content is ignored and a removed CA keeps the last one: the
// leader repairs the Secret.
func (w *Watcher) updateAgentletCA(secret *corev1.Secret) {
	state := ParseAgentletState(secret.Data, secret.Annotations)
	if state.CA == nil || state.CA.Key == nil || !state.CA.Cert.IsCA {
		return
	}
	next := &agentletCA{signer: state.CA, bundle: state.TrustBundle()}
	if cur := w.agentlet.Load(); cur != nil && cur.signer.Cert.Equal(next.signer.Cert) && bytes.Equal(cur.bundle, next.bundle) {
		return
	}
	w.agentlet.Store(next)
	w.log.Info("Loaded agentlet CA", "ca", describe(next.signer.Cert), "trusted", len(parseCerts(next.bundle)))
	w.mu.Lock()
	listeners := append([]chan struct{}(nil), w.agentletListeners...)
	w.mu.Unlock()
	for _, ch := range listeners {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// AgentletCA implements AgentletAuthority.
func (w *Watcher) AgentletCA() (*KeyPair, []byte) {
	cur := w.agentlet.Load()
	if cur == nil {
		return nil, nil
	}
	return cur.signer, cur.bundle
}

// AgentletCAChanges implements AgentletAuthority. Every call returns a new channel.
func (w *Watcher) AgentletCAChanges() <-chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.agentletListeners = append(w.agentletListeners, ch)
	w.mu.Unlock()
	return ch
}

// StaticAgentletAuthority is an AgentletAuthority with a fixed CA, for tests.
type StaticAgentletAuthority struct{ CA *KeyPair }

// AgentletCA implements AgentletAuthority.
func (s StaticAgentletAuthority) AgentletCA() (*KeyPair, []byte) {
	if s.CA == nil {
		return nil, nil
	}
	return s.CA, s.CA.CertPEM
}

// AgentletCAChanges implements AgentletAuthority: never.
func (StaticAgentletAuthority) AgentletCAChanges() <-chan struct{} { return nil }

// AgentletCertificateLifetime is how long an agentlet certificate is valid (never
// past its CA); it is renewed at two thirds of its life.
const AgentletCertificateLifetime = 30 * 24 * time.Hour

// IssueAgentletCertificate signs the serving certificate of one agentlet: its only
// name is serverName, it is valid for lifetime from now (backdated for clock skew)
// and never past the CA.
func IssueAgentletCertificate(ca *KeyPair, serverName string, now time.Time, lifetime time.Duration) (*KeyPair, error) {
	if ca == nil || ca.Key == nil {
		return nil, errors.New("no agentlet CA that can sign")
	}
	notAfter := minTime(now.Add(lifetime), ca.Cert.NotAfter)
	if !notAfter.After(now) {
		return nil, fmt.Errorf("agentlet CA %s has expired", describe(ca.Cert))
	}
	kp, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: serverName},
		DNSNames:    []string{serverName},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca)
	if err != nil {
		return nil, fmt.Errorf("issuing agentlet certificate for %s: %w", serverName, err)
	}
	return kp, nil
}

// Fingerprint is the hex SHA-256 of a certificate's DER encoding.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
