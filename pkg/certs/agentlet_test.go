package certs

import (
	"crypto/x509"
	"testing"
	"time"
)

// TestPlanCAKeepsAgentletTrust drives the agentlet CA through several rotations as the
// Rotator does (a staged CA is trusted when written) while leaves are issued the way the
// Agent controller does (renewed at two thirds of their life and after every CA
// change), and checks at every tick that every unexpired leaf ever issued verifies
// against the current bundle, and that the Secret's agentlet keys round-trip apart
// from the serving keys.
func TestPlanCAKeepsAgentletTrust(t *testing.T) {
	p := testPolicy()
	const name = "a.ns.agentlet.agentkube.io"
	start := time.Now()
	state := ParseAgentletState(nil, nil)
	var leaves []*x509.Certificate
	var leaf *KeyPair
	var leafIssuer string
	cas := map[string]bool{}
	for now := start; now.Before(start.Add(100 * time.Second)); now = now.Add(250 * time.Millisecond) {
		step, err := p.PlanCA(now, state)
		if err != nil {
			t.Fatal(err)
		}
		state = step.State
		if state.Serving != nil {
			t.Fatal("PlanCA issued a serving certificate")
		}
		if state.Next != nil && state.NextTrustedSince.IsZero() {
			state.NextTrustedSince = now
		}
		// The Secret round trip: only the agentlet keys, parsed back the same.
		data := state.data(agentletKeys)
		if _, ok := data[SecretKeyServingCert]; ok {
			t.Fatal("agentlet state wrote a serving key")
		}
		state = parseState(data, map[string]string{AnnotationAgentletNextCATrustedSince: state.NextTrustedSince.UTC().Format(time.RFC3339Nano)}, agentletKeys)
		cas[string(state.CA.Cert.Raw)] = true

		due := leaf == nil || leafIssuer != string(state.CA.Cert.Raw) ||
			!now.Before(leaf.Cert.NotBefore.Add(clockSkew).Add(leaf.Cert.NotAfter.Sub(leaf.Cert.NotBefore.Add(clockSkew))*2/3))
		if due {
			if leaf, err = IssueAgentletCertificate(state.CA, name, now, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			leafIssuer = string(state.CA.Cert.Raw)
			leaves = append(leaves, leaf.Cert)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(state.TrustBundle())
		for _, l := range leaves {
			if !now.Before(l.NotAfter) {
				continue
			}
			if _, err := l.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: now}); err != nil {
				t.Fatalf("at +%s an unexpired agentlet certificate (issuer %s) is not trusted: %v", now.Sub(start), l.Issuer.CommonName, err)
			}
		}
	}
	if len(cas) < 3 {
		t.Fatalf("only %d agentlet CAs in 100s; the test did not rotate", len(cas))
	}
}
