package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Keys of the certificate Secret. The Secret is the single source of truth: the leader
// writes it, every replica serves tls.crt/tls.key from it, and the trust bundle that is
// injected into the webhook configuration and the APIService is derived from it.
const (
	// SecretKeyCACert and SecretKeyCAKey are the CA that signs the current serving
	// certificate.
	SecretKeyCACert = "ca.crt"
	SecretKeyCAKey  = "ca.key"
	// SecretKeyServingCert and SecretKeyServingKey are what every replica serves.
	SecretKeyServingCert = "tls.crt"
	SecretKeyServingKey  = "tls.key"
	// SecretKeyNextCACert and SecretKeyNextCAKey hold a staged CA during a rotation: it
	// is already trusted (in the bundle) but signs nothing yet.
	SecretKeyNextCACert = "ca-next.crt"
	SecretKeyNextCAKey  = "ca-next.key"
	// SecretKeyPreviousCACerts holds the CAs that signed earlier serving certificates,
	// kept in the bundle until they expire so a replica still serving an old
	// certificate stays trusted. Their keys are discarded.
	SecretKeyPreviousCACerts = "ca-previous.crt"
	// SecretKeyCABundle is the trust bundle (current, next and previous CAs), written
	// for consumers that mount the Secret, such as a client of the aggregated API.
	SecretKeyCABundle = "ca-bundle.crt"

	// AnnotationNextCATrustedSince records when a bundle containing the staged CA was
	// written to every injection target. The staged CA is promoted once the
	// propagation delay has passed since then; keeping it on the Secret lets a new
	// leader continue a rotation where the old one stopped.
	AnnotationNextCATrustedSince = "certs.agentkube.io/next-ca-trusted-since"
)

// Keys of the agentlet CA in the same Secret. The agentlet CA signs the per-Agent
// certificates the agentlets serve (docs/agentlet.md); it is rotated like the serving
// CA (stage, promote, retire) but signs no certificate of its own in the Secret. It is
// a CA of its own, not the serving CA: kube-apiserver trusts the serving CA for the
// webhook and the aggregated API, and a key in every agent pod must not be one name
// check away from that.
const (
	SecretKeyAgentletCACert          = "agentlet-ca.crt"
	SecretKeyAgentletCAKey           = "agentlet-ca.key"
	SecretKeyAgentletNextCACert      = "agentlet-ca-next.crt"
	SecretKeyAgentletNextCAKey       = "agentlet-ca-next.key"
	SecretKeyAgentletPreviousCACerts = "agentlet-ca-previous.crt"
	SecretKeyAgentletCABundle        = "agentlet-ca-bundle.crt"
	// AnnotationAgentletNextCATrustedSince is AnnotationNextCATrustedSince of the
	// agentlet CA: when the staged agentlet CA was written to the Secret, which is
	// where every replica's agentlet clients read their bundle from.
	AnnotationAgentletNextCATrustedSince = "certs.agentkube.io/agentlet-next-ca-trusted-since"
)

// keySet names the Secret keys of one CA lineage.
type keySet struct {
	caCert, caKey, servingCert, servingKey, nextCert, nextKey, previous, bundle, trustedSince string
}

func (k keySet) all() []string {
	out := []string{}
	for _, v := range []string{k.caCert, k.caKey, k.servingCert, k.servingKey, k.nextCert, k.nextKey, k.previous, k.bundle} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

var (
	servingKeys = keySet{
		caCert: SecretKeyCACert, caKey: SecretKeyCAKey,
		servingCert: SecretKeyServingCert, servingKey: SecretKeyServingKey,
		nextCert: SecretKeyNextCACert, nextKey: SecretKeyNextCAKey,
		previous: SecretKeyPreviousCACerts, bundle: SecretKeyCABundle,
		trustedSince: AnnotationNextCATrustedSince,
	}
	agentletKeys = keySet{
		caCert: SecretKeyAgentletCACert, caKey: SecretKeyAgentletCAKey,
		nextCert: SecretKeyAgentletNextCACert, nextKey: SecretKeyAgentletNextCAKey,
		previous: SecretKeyAgentletPreviousCACerts, bundle: SecretKeyAgentletCABundle,
		trustedSince: AnnotationAgentletNextCATrustedSince,
	}
)

// State is the certificate material of the Secret, parsed.
type State struct {
	// CA signs Serving. Its key may be missing when the Secret was written by
	// someone else; the plan then replaces it.
	CA *KeyPair
	// Serving is the certificate every replica serves.
	Serving *KeyPair
	// Next is a CA staged for promotion, trusted but not yet signing.
	Next *KeyPair
	// NextTrustedSince is when a bundle containing Next reached every injection
	// target; zero until then.
	NextTrustedSince time.Time
	// Previous are retired CAs, trusted until they expire.
	Previous []*x509.Certificate
}

// TrustBundle is the PEM bundle to inject as caBundle: the current CA, the staged one
// and the retired ones that have not expired, in that order.
func (s *State) TrustBundle() []byte {
	var buf bytes.Buffer
	seen := map[string]bool{}
	add := func(c *x509.Certificate) {
		if c == nil || seen[string(c.Raw)] {
			return
		}
		seen[string(c.Raw)] = true
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if s.CA != nil {
		add(s.CA.Cert)
	}
	if s.Next != nil {
		add(s.Next.Cert)
	}
	for _, c := range s.Previous {
		add(c)
	}
	return buf.Bytes()
}

// ParseState reads the Secret's data and annotations. Entries that are missing or do
// not parse are left nil: the plan treats them as absent and replaces them, so a
// corrupted or empty Secret heals instead of wedging the rotator.
func ParseState(data map[string][]byte, annotations map[string]string) *State {
	return parseState(data, annotations, servingKeys)
}

// ParseAgentletState reads the agentlet CA's entries of the Secret (State.Serving is
// always nil).
func ParseAgentletState(data map[string][]byte, annotations map[string]string) *State {
	return parseState(data, annotations, agentletKeys)
}

func parseState(data map[string][]byte, annotations map[string]string, k keySet) *State {
	s := &State{}
	s.CA = parseKeyPairOrCert(data[k.caCert], data[k.caKey])
	if k.servingCert != "" {
		if kp, err := ParseKeyPair(data[k.servingCert], data[k.servingKey]); err == nil && keyMatches(kp) {
			s.Serving = kp
		}
	}
	if kp, err := ParseKeyPair(data[k.nextCert], data[k.nextKey]); err == nil && keyMatches(kp) && kp.Cert.IsCA {
		s.Next = kp
		if t, err := time.Parse(time.RFC3339Nano, annotations[k.trustedSince]); err == nil {
			s.NextTrustedSince = t
		}
	}
	s.Previous = parseCerts(data[k.previous])
	return s
}

// parseKeyPairOrCert keeps a CA certificate even without a usable key, so that its
// trust can be carried over into Previous when it is replaced.
func parseKeyPairOrCert(certPEM, keyPEM []byte) *KeyPair {
	if kp, err := ParseKeyPair(certPEM, keyPEM); err == nil && keyMatches(kp) {
		return kp
	}
	if certs := parseCerts(certPEM); len(certs) > 0 {
		return &KeyPair{Cert: certs[0], CertPEM: encodeCert(certs[0])}
	}
	return nil
}

// Data renders the State as Secret data.
func (s *State) Data() map[string][]byte { return s.data(servingKeys) }

func (s *State) data(k keySet) map[string][]byte {
	data := map[string][]byte{}
	if s.CA != nil {
		data[k.caCert] = s.CA.CertPEM
		if s.CA.Key != nil {
			data[k.caKey] = s.CA.KeyPEM
		}
	}
	if s.Serving != nil && k.servingCert != "" {
		data[k.servingCert] = s.Serving.CertPEM
		data[k.servingKey] = s.Serving.KeyPEM
	}
	if s.Next != nil {
		data[k.nextCert] = s.Next.CertPEM
		data[k.nextKey] = s.Next.KeyPEM
	}
	if len(s.Previous) > 0 {
		var buf bytes.Buffer
		for _, c := range s.Previous {
			buf.Write(encodeCert(c))
		}
		data[k.previous] = buf.Bytes()
	}
	data[k.bundle] = s.TrustBundle()
	return data
}

// Equal reports whether two states hold the same material.
func (s *State) Equal(o *State) bool {
	if !s.NextTrustedSince.Equal(o.NextTrustedSince) {
		return false
	}
	a, b := s.Data(), o.Data()
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func parseCerts(bundle []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// keyMatches reports whether the key pair's private key belongs to its certificate.
func keyMatches(kp *KeyPair) bool {
	pub, ok := kp.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(kp.Cert.PublicKey)
}

// signedBy reports whether cert verifies against ca alone.
func signedBy(cert, ca *x509.Certificate, now time.Time) bool {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err == nil
}

// coversHosts reports whether cert names exactly hosts (in any order).
func coversHosts(cert *x509.Certificate, hosts []string) bool {
	var names []string
	names = append(names, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	want := slices.Clone(hosts)
	slices.Sort(names)
	slices.Sort(want)
	return slices.Equal(names, slices.Compact(want))
}

// errNoCertificate is returned while no serving certificate has been loaded yet.
var errNoCertificate = errors.New("no serving certificate loaded yet")

func describe(c *x509.Certificate) string {
	return fmt.Sprintf("%q (serial %s, not after %s)", c.Subject.CommonName, c.SerialNumber.Text(16), c.NotAfter.UTC().Format(time.RFC3339))
}
