package certs

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func testPolicy() Policy {
	return Policy{
		CommonName:         "agentkube-manager.agentkube-system.svc",
		Hosts:              []string{"agentkube-manager.agentkube-system.svc", "agentkube-manager.agentkube-system.svc.cluster.local", "127.0.0.1"},
		CALifetime:         30 * time.Second,
		CARenewBefore:      15 * time.Second,
		ServingLifetime:    20 * time.Second,
		ServingRenewBefore: 8 * time.Second,
		PropagationDelay:   2 * time.Second,
	}
}

func verifies(leaf *x509.Certificate, bundle []byte, now time.Time) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       pool,
		DNSName:     "agentkube-manager.agentkube-system.svc",
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// TestPlanKeepsTrustAcrossRotations drives the plan with a moving clock through several
// CA rotations, injecting the bundle after each step as the Rotator does, and checks
// the two promises of the overlap at every tick:
//   - the certificate served now is trusted by every bundle a lagging kube-apiserver
//     could still hold (those injected within the propagation delay), and
//   - every certificate ever served that has not expired is trusted by the bundle
//     injected now (a lagging replica may still serve it).
func TestPlanKeepsTrustAcrossRotations(t *testing.T) {
	p := testPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	type injected struct {
		at     time.Time
		bundle []byte
	}
	start := time.Now()
	state := ParseState(nil, nil)
	var history []injected
	var served []*x509.Certificate
	cas := map[string]bool{}
	for now := start; now.Before(start.Add(100 * time.Second)); now = now.Add(250 * time.Millisecond) {
		step, err := p.Plan(now, state)
		if err != nil {
			t.Fatal(err)
		}
		state = step.State
		if !step.NextCheck.After(now) {
			t.Fatalf("at +%s: next check %s is not in the future", now.Sub(start), step.NextCheck.Sub(start))
		}
		bundle := state.TrustBundle()
		history = append(history, injected{now, bundle})
		if state.Next != nil && state.NextTrustedSince.IsZero() {
			state.NextTrustedSince = now
		}
		cas[string(state.CA.Cert.Raw)] = true
		if len(served) == 0 || !served[len(served)-1].Equal(state.Serving.Cert) {
			served = append(served, state.Serving.Cert)
		}

		for _, h := range history {
			if h.at.Before(now.Add(-p.PropagationDelay)) || h.at.Before(start.Add(p.PropagationDelay)) {
				continue
			}
			if err := verifies(state.Serving.Cert, h.bundle, now); err != nil {
				t.Fatalf("at +%s: serving certificate %s not trusted by the bundle injected at +%s: %v",
					now.Sub(start), describe(state.Serving.Cert), h.at.Sub(start), err)
			}
		}
		for _, leaf := range served {
			if now.Before(leaf.NotAfter) {
				if err := verifies(leaf, bundle, now); err != nil {
					t.Fatalf("at +%s: earlier certificate %s, still valid, not trusted by the current bundle: %v",
						now.Sub(start), describe(leaf), err)
				}
			}
		}
		if n := len(parseCerts(bundle)); n > 3 {
			t.Fatalf("at +%s: bundle holds %d CAs", now.Sub(start), n)
		}
	}
	if len(cas) < 5 {
		t.Fatalf("saw %d CAs in 100 s, want at least 5 rotations", len(cas))
	}
}

func TestPlanIsStableBetweenDeadlines(t *testing.T) {
	p := testPolicy()
	now := time.Now()
	step, err := p.Plan(now, ParseState(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !step.Changed {
		t.Fatal("bootstrapping an empty Secret reported no change")
	}
	// Round-trip through the Secret's data, as the Rotator does.
	state := ParseState(step.State.Data(), nil)
	again, err := p.Plan(now.Add(time.Second), state)
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed {
		t.Fatalf("plan changed a fresh state: %v", again.Actions)
	}
	if !again.State.Equal(state) {
		t.Fatal("unchanged plan returned a different state")
	}
}

func TestPlanHealsDamagedSecret(t *testing.T) {
	p := testPolicy()
	now := time.Now()
	step, err := p.Plan(now, ParseState(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	data := step.State.Data()
	data[SecretKeyServingKey] = []byte("garbage")
	healed, err := p.Plan(now, ParseState(data, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !healed.Changed || !healed.State.CA.Cert.Equal(step.State.CA.Cert) {
		t.Fatalf("a broken serving key should be re-issued from the same CA; actions %v", healed.Actions)
	}

	delete(data, SecretKeyCAKey)
	replaced, err := p.Plan(now, ParseState(data, nil))
	if err != nil {
		t.Fatal(err)
	}
	if replaced.State.CA.Cert.Equal(step.State.CA.Cert) {
		t.Fatal("a CA without its key was kept")
	}
	if len(replaced.State.Previous) != 1 || !replaced.State.Previous[0].Equal(step.State.CA.Cert) {
		t.Fatal("the keyless CA should stay trusted until it expires")
	}
}

func TestPlanNamesHosts(t *testing.T) {
	p := testPolicy()
	step, err := p.Plan(time.Now(), ParseState(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	leaf := step.State.Serving.Cert
	for _, name := range []string{"agentkube-manager.agentkube-system.svc", "agentkube-manager.agentkube-system.svc.cluster.local"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Error(err)
		}
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	p.Hosts = append(p.Hosts, "localhost")
	renamed, err := p.Plan(time.Now(), step.State)
	if err != nil {
		t.Fatal(err)
	}
	if err := renamed.State.Serving.Cert.VerifyHostname("localhost"); err != nil {
		t.Fatalf("changed hosts did not re-issue the certificate: %v", err)
	}
}

func TestPolicyValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Policy){
		"renew before longer than CA lifetime": func(p *Policy) { p.CARenewBefore = p.CALifetime },
		"serving renew before lifetime":        func(p *Policy) { p.ServingRenewBefore = p.ServingLifetime },
		"no propagation delay":                 func(p *Policy) { p.PropagationDelay = 0 },
		"CA renewal too late to promote":       func(p *Policy) { p.CARenewBefore = p.ServingRenewBefore + p.PropagationDelay },
		"no hosts":                             func(p *Policy) { p.Hosts = nil },
	} {
		p := testPolicy()
		mutate(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o := Options{}
	if err := o.Policy().Validate(); err != nil {
		t.Errorf("default options: %v", err)
	}
	if got := strings.Join(o.Hosts(), ","); got != "agentkube-manager.agentkube-system.svc,agentkube-manager.agentkube-system.svc.cluster.local" {
		t.Errorf("default hosts %s", got)
	}
}
