package certs

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Defaults of Options.
const (
	DefaultNamespace            = "agentkube-system"
	DefaultSecretName           = "agentkube-manager-certs"
	DefaultServiceName          = "agentkube-manager"
	DefaultClusterDomain        = "cluster.local"
	DefaultWebhookConfiguration = "agentkube-manager"
	DefaultAPIService           = "v1alpha1.subresources.agentkube.io"

	DefaultCALifetime         = 5 * 365 * 24 * time.Hour
	DefaultCARenewBefore      = 180 * 24 * time.Hour
	DefaultServingLifetime    = 90 * 24 * time.Hour
	DefaultServingRenewBefore = 30 * 24 * time.Hour
	DefaultPropagationDelay   = time.Minute
	DefaultResyncPeriod       = time.Hour
)

// Options configure the manager's certificates. The zero value means the defaults.
type Options struct {
	// Namespace and SecretName locate the certificate Secret.
	Namespace, SecretName string
	// ServiceName is the Service in front of the manager; the serving certificate
	// names <ServiceName>.<Namespace>.svc and .svc.<ClusterDomain>, which is what
	// kube-apiserver verifies for both webhooks and APIServices.
	ServiceName, ClusterDomain string
	// ExtraHosts are more DNS names or IP addresses for the serving certificate
	// (localhost and 127.0.0.1 in tests and for port-forwarding).
	ExtraHosts []string
	// WebhookConfigurations are the ValidatingWebhookConfigurations whose webhooks
	// get the trust bundle.
	WebhookConfigurations []string
	// MutatingWebhookConfigurations are the MutatingWebhookConfigurations whose
	// webhooks get the trust bundle.
	MutatingWebhookConfigurations []string
	// APIServices get the trust bundle in spec.caBundle.
	APIServices []string
	// Lifetimes; see Policy.
	CALifetime, CARenewBefore           time.Duration
	ServingLifetime, ServingRenewBefore time.Duration
	PropagationDelay                    time.Duration
	// ResyncPeriod bounds the time between two checks of the rotator.
	ResyncPeriod time.Duration
	// DisableRotation leaves the serving certificate alone: something else
	// (cert-manager) writes the Secret's tls.crt and tls.key and injects the caBundle.
	// The rotator then keeps only the agentlet CA (its own keys of the Secret).
	DisableRotation bool
}

// SetDefaults fills in the defaults of unset fields.
func (o *Options) SetDefaults() { o.setDefaults() }

func (o *Options) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Namespace, DefaultNamespace)
	def(&o.SecretName, DefaultSecretName)
	def(&o.ServiceName, DefaultServiceName)
	def(&o.ClusterDomain, DefaultClusterDomain)
	if o.WebhookConfigurations == nil {
		o.WebhookConfigurations = []string{DefaultWebhookConfiguration}
	}
	if o.MutatingWebhookConfigurations == nil {
		o.MutatingWebhookConfigurations = []string{DefaultWebhookConfiguration}
	}
	if o.APIServices == nil {
		o.APIServices = []string{DefaultAPIService}
	}
	dur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	dur(&o.CALifetime, DefaultCALifetime)
	dur(&o.CARenewBefore, DefaultCARenewBefore)
	dur(&o.ServingLifetime, DefaultServingLifetime)
	dur(&o.ServingRenewBefore, DefaultServingRenewBefore)
	dur(&o.PropagationDelay, DefaultPropagationDelay)
	dur(&o.ResyncPeriod, DefaultResyncPeriod)
}

// Hosts are the names the serving certificate carries.
func (o Options) Hosts() []string {
	o.setDefaults()
	svc := o.ServiceName + "." + o.Namespace + ".svc"
	return append([]string{svc, svc + "." + o.ClusterDomain}, o.ExtraHosts...)
}

// Policy is the rotation policy the Options describe.
func (o Options) Policy() Policy {
	o.setDefaults()
	return Policy{
		CommonName:         o.ServiceName + "." + o.Namespace + ".svc",
		Hosts:              o.Hosts(),
		CALifetime:         o.CALifetime,
		CARenewBefore:      o.CARenewBefore,
		ServingLifetime:    o.ServingLifetime,
		ServingRenewBefore: o.ServingRenewBefore,
		PropagationDelay:   o.PropagationDelay,
	}
}

// AddFlags binds the Options to command-line flags (prefix --cert-).
func (o *Options) AddFlags(fs *flag.FlagSet) {
	o.setDefaults()
	fs.StringVar(&o.Namespace, "cert-namespace", o.Namespace, "Namespace of the certificate Secret and of the manager's Service.")
	fs.StringVar(&o.SecretName, "cert-secret", o.SecretName, "Secret that holds the manager's CA and serving certificate.")
	fs.StringVar(&o.ServiceName, "cert-service", o.ServiceName, "Service in front of the webhook and the aggregated API; the serving certificate names <service>.<namespace>.svc.")
	fs.StringVar(&o.ClusterDomain, "cert-cluster-domain", o.ClusterDomain, "Cluster DNS domain for the serving certificate's <service>.<namespace>.svc.<domain> name.")
	fs.Func("cert-extra-hosts", "Comma-separated extra DNS names or IPs for the serving certificate.", func(s string) error {
		o.ExtraHosts = splitList(s)
		return nil
	})
	fs.Func("cert-webhook-configurations", "Comma-separated ValidatingWebhookConfigurations to inject the CA bundle into (default "+strings.Join(o.WebhookConfigurations, ",")+").", func(s string) error {
		o.WebhookConfigurations = splitList(s)
		return nil
	})
	fs.Func("cert-mutating-webhook-configurations", "Comma-separated MutatingWebhookConfigurations to inject the CA bundle into (default "+strings.Join(o.MutatingWebhookConfigurations, ",")+").", func(s string) error {
		o.MutatingWebhookConfigurations = splitList(s)
		return nil
	})
	fs.Func("cert-api-services", "Comma-separated APIServices to inject the CA bundle into (default "+strings.Join(o.APIServices, ",")+").", func(s string) error {
		o.APIServices = splitList(s)
		return nil
	})
	fs.DurationVar(&o.CALifetime, "cert-ca-lifetime", o.CALifetime, "Validity of a new CA.")
	fs.DurationVar(&o.CARenewBefore, "cert-ca-renew-before", o.CARenewBefore, "Start a CA rotation this long before the CA expires.")
	fs.DurationVar(&o.ServingLifetime, "cert-serving-lifetime", o.ServingLifetime, "Validity of a serving certificate (capped at its CA's).")
	fs.DurationVar(&o.ServingRenewBefore, "cert-serving-renew-before", o.ServingRenewBefore, "Renew the serving certificate this long before it expires.")
	fs.DurationVar(&o.PropagationDelay, "cert-propagation-delay", o.PropagationDelay, "How long a new CA must be in every injected bundle before certificates are served from it.")
	fs.BoolVar(&o.DisableRotation, "cert-disable-rotation", o.DisableRotation, "Only serve the Secret's certificate; something else (cert-manager) issues it and injects caBundle.")
}

func splitList(s string) []string {
	out := []string{}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// AddWatcherToManager adds the certificate machinery to mgr: the Rotator (leader
// only; with DisableRotation it keeps only the agentlet CA), watcher (made by
// NewWatcher for the same Secret; every replica), and a readyz check that fails
// until this replica has a certificate to serve. Callers give the Watcher to the
// TLS servers and the agentlet clients, and to the manager's controllers (which
// issue and verify agentlet certificates) before the manager exists.
func AddWatcherToManager(mgr manager.Manager, opts Options, watcher *Watcher) error {
	opts.setDefaults()
	kube, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("building Kubernetes client: %w", err)
	}
	if err := mgr.Add(watcher); err != nil {
		return fmt.Errorf("adding certificate watcher: %w", err)
	}
	if err := mgr.AddReadyzCheck("serving-certificate", watcher.Checker); err != nil {
		return fmt.Errorf("adding serving-certificate readyz check: %w", err)
	}
	aggregator, err := aggregatorclient.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("building aggregator client: %w", err)
	}
	rotator, err := NewRotator(kube, aggregator, opts)
	if err != nil {
		return err
	}
	if err := mgr.Add(rotator); err != nil {
		return fmt.Errorf("adding certificate rotator: %w", err)
	}
	return nil
}
