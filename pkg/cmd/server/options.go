// Package server holds the options, configuration and run loop of the
// subresources.agentkube.io aggregated API server, which runs inside agentkube-manager
// through Options.NewServer, whose result is a controller-runtime Runnable.
package server

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/compatibility"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/featuregate"

	"github.com/exo-in-go/exo/pkg/apiserver"
	agentregistry "github.com/exo-in-go/exo/pkg/registry/agent"
)

// Defaults of the aggregated API server.
const (
	// DefaultPort is where agentkube-manager serves the aggregated API (DESIGN §1).
	DefaultPort = 8082
	// DefaultMaxStreams caps concurrent log and attach streams per replica.
	DefaultMaxStreams = 200
	// ServiceName and ServiceNamespace are the Service the APIService points at; the
	// serving certificate must carry ServiceName.ServiceNamespace.svc.
	ServiceName      = "agentkube-manager"
	ServiceNamespace = "agentkube-system"
)

// Options configure the aggregated API server. The embedded generic options keep their
// upstream flag names (--secure-port, --tls-cert-file, --authentication-kubeconfig,
// --requestheader-*, --authorization-*, --audit-*, --enable-admission-plugins, ...), so
// operators of other aggregated servers find what they know.
type Options struct {
	SecureServing  *genericoptions.SecureServingOptionsWithLoopback
	Authentication *genericoptions.DelegatingAuthenticationOptions
	Authorization  *genericoptions.DelegatingAuthorizationOptions
	Audit          *genericoptions.AuditOptions
	Features       *genericoptions.FeatureOptions
	Admission      *genericoptions.AdmissionOptions
	FeatureGate    featuregate.FeatureGate

	// Kubeconfig is the kubeconfig file used to create AgentRuns and read Agents, pods,
	// Secrets and admission configuration; in-cluster configuration when empty. Ignored
	// when ClientConfig is set.
	Kubeconfig string
	// MaxStreams caps concurrent log and attach streams.
	MaxStreams int

	// The fields below are for embedding the server in agentkube-manager; they have no
	// flags.

	// ClientConfig replaces Kubeconfig with the manager's own client configuration.
	ClientConfig *rest.Config
	// ServingCert serves TLS with a certificate the caller keeps current (the manager's
	// certificate watcher); it replaces --tls-cert-file/--tls-private-key-file. A provider
	// that notifies its listeners on change is picked up without a restart; one that is
	// also a dynamiccertificates.ControllerRunner is run by the server.
	ServingCert dynamiccertificates.CertKeyContentProvider
	// Agents reads Agents (the manager passes agentregistry.FromClient(mgr.GetCache())).
	// When nil the server runs its own shared informer over agentkube.io Agents.
	Agents agentregistry.AgentReader
	// Locator finds an Agent's agentlet; a PodLocator when nil.
	Locator agentregistry.Locator
	// AgentletBundle returns the agentlet CA bundle for the default PodLocator, which
	// verifies agentlets serving TLS against it (certs.Watcher.AgentletCA).
	AgentletBundle func() []byte
}

// NewOptions returns the defaults: port 8082, delegated authentication with the front-proxy
// configuration from kube-system/extension-apiserver-authentication, delegated
// authorization, and validating/mutating admission webhooks and policies.
func NewOptions() *Options {
	serving := genericoptions.NewSecureServingOptions()
	serving.BindPort = DefaultPort
	// kube-apiserver multiplexes many requests, long-running ones included, onto one
	// HTTP/2 connection to us.
	serving.HTTP2MaxStreamsPerConnection = 1000
	serving.ServerCert.CertDirectory = "" // no self-signed certificates on disk unless asked for

	o := &Options{
		SecureServing:  serving.WithLoopback(),
		Authentication: genericoptions.NewDelegatingAuthenticationOptions(),
		Authorization:  genericoptions.NewDelegatingAuthorizationOptions(),
		Audit:          genericoptions.NewAuditOptions(),
		Features:       genericoptions.NewFeatureOptions(),
		Admission:      genericoptions.NewAdmissionOptions(),
		FeatureGate:    utilfeature.DefaultFeatureGate,
		MaxStreams:     DefaultMaxStreams,
	}
	// A missing extension-apiserver-authentication ConfigMap (or the RBAC to read it)
	// would otherwise leave the server trusting nobody, or worse, silently: fail loudly.
	o.Authentication.TolerateInClusterLookupFailure = false
	// API Priority and Fairness would need flowcontrol informers and RBAC for no gain:
	// kube-apiserver's APF already fronts every request that reaches us, and streams,
	// which APF skips, are capped by MaxStreams.
	o.Features.EnablePriorityAndFairness = false
	return o
}

// AddFlags registers the options' flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.SecureServing.AddFlags(fs)
	o.Authentication.AddFlags(fs)
	o.Authorization.AddFlags(fs)
	o.Audit.AddFlags(fs)
	o.Features.AddFlags(fs)
	o.Admission.AddFlags(fs)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file for creating AgentRuns and reading Agents, pods and Secrets; in-cluster configuration when empty.")
	fs.IntVar(&o.MaxStreams, "max-streams", o.MaxStreams, "Maximum number of concurrent agents/log and agents/attach streams; more are refused with 429.")
}

// Complete fills in what depends on other options. A serving certificate is required:
// from --tls-cert-file/--tls-private-key-file, from ServingCert, or self-signed in
// --cert-dir when that is set (development only).
func (o *Options) Complete() error {
	if o.ServingCert != nil {
		o.SecureServing.ServerCert.GeneratedCert = o.ServingCert
	}
	if o.SecureServing.ServerCert.CertDirectory != "" {
		alternate := []string{"localhost", ServiceName + "." + ServiceNamespace + ".svc", ServiceName + "." + ServiceNamespace + ".svc.cluster.local"}
		if err := o.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", alternate, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
			return fmt.Errorf("creating self-signed serving certificate: %w", err)
		}
	}
	return nil
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	errs = append(errs, o.SecureServing.Validate()...)
	errs = append(errs, o.Authentication.Validate()...)
	errs = append(errs, o.Authorization.Validate()...)
	errs = append(errs, o.Audit.Validate()...)
	errs = append(errs, o.Features.Validate()...)
	errs = append(errs, o.Admission.Validate()...)
	cert := o.SecureServing.ServerCert
	if cert.CertKey.CertFile == "" && cert.GeneratedCert == nil {
		errs = append(errs, errors.New("no serving certificate: set --tls-cert-file and --tls-private-key-file (the Secret the manager keeps current), or --cert-dir for a self-signed one in development"))
	}
	if o.MaxStreams < 1 {
		errs = append(errs, fmt.Errorf("--max-streams must be at least 1, got %d", o.MaxStreams))
	}
	return utilerrors.NewAggregate(errs)
}

// clientConfig is the configuration the server uses for its own calls to kube-apiserver.
func (o *Options) clientConfig() (*rest.Config, error) {
	if o.ClientConfig != nil {
		return rest.CopyConfig(o.ClientConfig), nil
	}
	if o.Kubeconfig != "" {
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: o.Kubeconfig}, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", o.Kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no --kubeconfig and not in a cluster: %w", err)
	}
	return cfg, nil
}

// Config builds the server configuration from the options (after Complete and Validate).
func (o *Options) Config() (*apiserver.Config, error) {
	c := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	c.EffectiveVersion = compatibility.DefaultBuildEffectiveVersion()
	// OpenAPI first: the authentication options add their security definitions to it.
	apiserver.ApplyDefaults(c)

	if err := o.SecureServing.ApplyToConfig(&c.Config); err != nil {
		return nil, fmt.Errorf("secure serving: %w", err)
	}
	if err := o.Authentication.ApplyTo(&c.Authentication, c.SecureServing, c.OpenAPIConfig); err != nil {
		return nil, fmt.Errorf("delegated authentication: %w", err)
	}
	if err := o.Authorization.ApplyTo(&c.Authorization); err != nil {
		return nil, fmt.Errorf("delegated authorization: %w", err)
	}
	if err := o.Audit.ApplyTo(&c.Config); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}

	clientConfig, err := o.clientConfig()
	if err != nil {
		return nil, err
	}
	kubeClient, err := kubernetes.NewForConfig(clientConfig)
	if err != nil {
		return nil, fmt.Errorf("building Kubernetes client: %w", err)
	}
	dynamicClient, err := dynamic.NewForConfig(clientConfig)
	if err != nil {
		return nil, fmt.Errorf("building dynamic client: %w", err)
	}
	c.ClientConfig = clientConfig
	// The generic server starts this factory in a post-start hook; admission's informers
	// (namespaces, webhook and policy configurations) live in it.
	c.SharedInformerFactory = informers.NewSharedInformerFactory(kubeClient, 10*time.Minute)
	if err := o.Features.ApplyTo(&c.Config, kubeClient, c.SharedInformerFactory); err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	if err := o.Admission.ApplyTo(&c.Config, c.SharedInformerFactory, kubeClient, dynamicClient, o.FeatureGate, c.EffectiveVersion); err != nil {
		return nil, fmt.Errorf("admission: %w", err)
	}

	return &apiserver.Config{
		GenericConfig: c,
		ExtraConfig: apiserver.ExtraConfig{
			Agents:     o.Agents,
			Locator:    o.Locator,
			MaxStreams: o.MaxStreams,
		},
	}, nil
}
