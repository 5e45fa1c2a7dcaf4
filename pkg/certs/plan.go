package certs

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"
)

// Policy says what the certificates name, how long they live and when they are
// replaced.
//
// A CA rotation has three steps so that no client ever meets a certificate it does
// not trust:
//
//  1. Stage: CARenewBefore ahead of the CA's expiry a new CA is generated and added
//     to the trust bundle, but signs nothing yet.
//  2. Promote: once the bundle holding both CAs has been injected everywhere and
//     PropagationDelay has passed (kube-apiservers pick up caBundle changes through
//     informers), the new CA becomes current and a serving certificate is issued
//     from it. Replicas switch to it as their Secret informer sees the change.
//  3. Retire: the old CA stays in the bundle until it expires. Every certificate it
//     signed expires no later than it does, so a replica that is still serving an
//     old certificate for whatever reason remains trusted for as long as that
//     certificate could be served at all.
type Policy struct {
	// CommonName prefixes the CAs' and names the serving certificates' subject.
	CommonName string
	// Hosts are the serving certificate's DNS names and IP addresses.
	Hosts []string
	// CALifetime is how long a new CA is valid.
	CALifetime time.Duration
	// CARenewBefore is how long before its expiry a CA is replaced.
	CARenewBefore time.Duration
	// ServingLifetime is how long a serving certificate is valid (never past its CA).
	ServingLifetime time.Duration
	// ServingRenewBefore is how long before its expiry a serving certificate is
	// replaced.
	ServingRenewBefore time.Duration
	// PropagationDelay is how long a staged CA must have been in every injected
	// bundle before certificates are served from it.
	PropagationDelay time.Duration
}

// Validate reports settings under which a rotation could not keep trust continuous.
func (p Policy) Validate() error {
	var errs []error
	if len(p.Hosts) == 0 {
		errs = append(errs, errors.New("no serving certificate hosts"))
	}
	if p.CARenewBefore <= 0 || p.CARenewBefore >= p.CALifetime {
		errs = append(errs, fmt.Errorf("CA renew-before %s must be positive and shorter than the CA lifetime %s", p.CARenewBefore, p.CALifetime))
	}
	if p.ServingRenewBefore <= 0 || p.ServingRenewBefore >= p.ServingLifetime {
		errs = append(errs, fmt.Errorf("serving renew-before %s must be positive and shorter than the serving lifetime %s", p.ServingRenewBefore, p.ServingLifetime))
	}
	if p.PropagationDelay <= 0 {
		errs = append(errs, fmt.Errorf("propagation delay %s must be positive", p.PropagationDelay))
	}
	// The staged CA must be promoted before the serving certificate (capped at the
	// current CA's expiry) needs renewing, or the last certificates of the old CA
	// would be re-issued over and over with ever shorter lives.
	if p.CARenewBefore <= p.ServingRenewBefore+p.PropagationDelay {
		errs = append(errs, fmt.Errorf("CA renew-before %s must exceed serving renew-before %s plus propagation delay %s", p.CARenewBefore, p.ServingRenewBefore, p.PropagationDelay))
	}
	return errors.Join(errs...)
}

// Step is the outcome of Plan.
type Step struct {
	// State is the desired state; it is the input when nothing changed.
	State *State
	// Changed is true when State must be written.
	Changed bool
	// Actions says what changed, for logs and events.
	Actions []string
	// NextCheck is when the plan must run again at the latest.
	NextCheck time.Time
}

// Plan decides the next state of the certificate Secret at time now. It is a pure
// function of its inputs apart from key generation, so the whole rotation can be
// exercised with a moved clock.
func (p Policy) Plan(now time.Time, current *State) (*Step, error) {
	return p.plan(now, current, true)
}

// PlanCA is Plan for a CA lineage without a serving certificate of its own (the
// agentlet CA, whose leaves the Agent controller issues): the same stage, promote and
// retire steps; Hosts, ServingLifetime and ServingRenewBefore are not used.
func (p Policy) PlanCA(now time.Time, current *State) (*Step, error) {
	return p.plan(now, current, false)
}

func (p Policy) plan(now time.Time, current *State, serving bool) (*Step, error) {
	s := &State{
		CA:               current.CA,
		Serving:          current.Serving,
		Next:             current.Next,
		NextTrustedSince: current.NextTrustedSince,
		Previous:         slices.Clone(current.Previous),
	}
	step := &Step{State: s}
	act := func(format string, args ...any) {
		step.Changed = true
		step.Actions = append(step.Actions, fmt.Sprintf(format, args...))
	}
	canSign := func(kp *KeyPair) bool {
		return kp != nil && kp.Key != nil && kp.Cert.IsCA && now.Before(kp.Cert.NotAfter)
	}
	retire := func(ca *KeyPair) {
		if ca != nil && now.Before(ca.Cert.NotAfter) && !slices.ContainsFunc(s.Previous, ca.Cert.Equal) {
			s.Previous = append(s.Previous, ca.Cert)
		}
	}

	// 1. A CA that can sign. Replacing it here skips the overlap; that only happens on
	// first start, or when the Secret was damaged or left to expire.
	if !canSign(s.CA) {
		retire(s.CA)
		if canSign(s.Next) {
			s.CA, s.Next, s.NextTrustedSince = s.Next, nil, time.Time{}
			act("promoted the staged CA early because the current one cannot sign")
		} else {
			ca, err := p.newCA(now)
			if err != nil {
				return nil, err
			}
			s.CA, s.Next, s.NextTrustedSince = ca, nil, time.Time{}
			act("created CA %s", describe(ca.Cert))
		}
		s.Serving = nil
	}

	// 2. Stage the successor of a CA that is due.
	if s.Next == nil && !now.Before(s.CA.Cert.NotAfter.Add(-p.CARenewBefore)) {
		next, err := p.newCA(now)
		if err != nil {
			return nil, err
		}
		s.Next, s.NextTrustedSince = next, time.Time{}
		act("staged CA %s to replace %s", describe(next.Cert), describe(s.CA.Cert))
	}

	// 3. Promote a staged CA that every target has trusted for long enough.
	if s.Next != nil && !s.NextTrustedSince.IsZero() && !now.Before(s.NextTrustedSince.Add(p.PropagationDelay)) {
		retire(s.CA)
		act("promoted CA %s, retired %s", describe(s.Next.Cert), describe(s.CA.Cert))
		s.CA, s.Next, s.NextTrustedSince = s.Next, nil, time.Time{}
		s.Serving = nil
	}

	// 4. A serving certificate from the current CA for the current names, renewed when
	// due (unless the CA's own expiry is what caps it; the CA rotation fixes that).
	servingNotAfter := minTime(now.Add(p.ServingLifetime), s.CA.Cert.NotAfter)
	switch {
	case !serving:
		s.Serving = nil
	case s.Serving == nil:
		act("issuing serving certificate")
	case !signedBy(s.Serving.Cert, s.CA.Cert, now):
		act("serving certificate %s is not valid under the current CA", describe(s.Serving.Cert))
		s.Serving = nil
	case !coversHosts(s.Serving.Cert, p.Hosts):
		act("serving certificate names %v, want %v", s.Serving.Cert.DNSNames, p.Hosts)
		s.Serving = nil
	case !now.Before(p.servingDue(s.Serving.Cert)) && servingNotAfter.After(s.Serving.Cert.NotAfter):
		act("serving certificate %s is due for renewal", describe(s.Serving.Cert))
		s.Serving = nil
	}
	if serving && s.Serving == nil {
		kp, err := p.issueServing(s.CA, now, servingNotAfter)
		if err != nil {
			return nil, err
		}
		s.Serving = kp
		step.Actions[len(step.Actions)-1] += fmt.Sprintf("; issued %s", describe(kp.Cert))
	}

	// 5. Forget retired CAs that have expired: nothing they signed is valid any more.
	kept := s.Previous[:0]
	for _, c := range s.Previous {
		if now.Before(c.NotAfter) {
			kept = append(kept, c)
		} else {
			act("dropped expired CA %s from the bundle", describe(c))
		}
	}
	s.Previous = kept

	step.NextCheck = p.nextCheck(now, s)
	return step, nil
}

// nextCheck is the earliest time at which Plan would do something.
func (p Policy) nextCheck(now time.Time, s *State) time.Time {
	next := s.CA.Cert.NotAfter
	consider := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	if s.Next == nil {
		consider(s.CA.Cert.NotAfter.Add(-p.CARenewBefore))
	} else if !s.NextTrustedSince.IsZero() {
		consider(s.NextTrustedSince.Add(p.PropagationDelay))
	}
	if s.Serving != nil {
		if due := p.servingDue(s.Serving.Cert); due.After(now) {
			consider(due)
		}
	}
	for _, c := range s.Previous {
		consider(c.NotAfter)
	}
	return next
}

func (p Policy) servingDue(c *x509.Certificate) time.Time {
	return c.NotAfter.Add(-p.ServingRenewBefore)
}

// newCA makes a CA valid from now (backdated for clock skew) for CALifetime.
func (p Policy) newCA(now time.Time) (*KeyPair, error) {
	ca, err := issue(&x509.Certificate{
		// A timestamp in the name tells the CAs of a bundle apart in logs and openssl.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s-ca@%d", p.CommonName, now.Unix())},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(p.CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	return ca, nil
}

// issueServing signs a serving certificate for Hosts that expires at notAfter.
func (p Policy) issueServing(ca *KeyPair, now, notAfter time.Time) (*KeyPair, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: p.CommonName},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range p.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	kp, err := issue(tmpl, ca)
	if err != nil {
		return nil, fmt.Errorf("issuing serving certificate: %w", err)
	}
	return kp, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
