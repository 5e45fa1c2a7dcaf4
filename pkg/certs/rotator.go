package certs

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	aggregatorclient "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	aggregatorinformers "k8s.io/kube-aggregator/pkg/client/informers/externalversions"
)

// FieldManager is the field manager of the rotator's writes, distinct from the
// manager's controllers so that GitOps tools can be told to ignore exactly these
// fields.
const FieldManager = "agentkube-manager-certs"

// requestTimeout bounds every API call of a sync.
const requestTimeout = 30 * time.Second

// Rotator keeps the certificate Secret valid, rotates it before expiry and injects
// its trust bundle into the webhook configurations and APIServices. It runs on the
// leader only; the Secret's resourceVersion guards against a deposed leader still
// writing.
//
// Informers on the Secret and on the targets only trigger syncs: a sync reads
// everything from the API server, so it never acts on a stale cache (syncs are rare:
// on a change, and at the times the Policy names).
type Rotator struct {
	namespace, secretName string
	webhookConfigs        []string
	mutatingConfigs       []string
	apiServices           []string
	policy                Policy
	// serving is false with Options.DisableRotation: something else writes the
	// serving certificate and injects its CA; only the agentlet CA is kept here.
	serving bool
	resync  time.Duration

	kube       kubernetes.Interface
	aggregator aggregatorclient.Interface
	now        func() time.Time
	log        logr.Logger
	queue      workqueue.TypedRateLimitingInterface[string]
}

// syncKey is the only item of the queue: every trigger means "check everything".
const syncKey = "sync"

// NewRotator makes a Rotator; it does nothing until Start.
func NewRotator(kube kubernetes.Interface, aggregator aggregatorclient.Interface, opts Options) (*Rotator, error) {
	opts.setDefaults()
	policy := opts.Policy()
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("invalid certificate policy: %w", err)
	}
	return &Rotator{
		namespace:       opts.Namespace,
		secretName:      opts.SecretName,
		webhookConfigs:  opts.WebhookConfigurations,
		mutatingConfigs: opts.MutatingWebhookConfigurations,
		apiServices:     opts.APIServices,
		policy:          policy,
		serving:         !opts.DisableRotation,
		resync:          opts.ResyncPeriod,
		kube:            kube,
		aggregator:      aggregator,
		now:             time.Now,
		log:             klog.Background().WithName("cert-rotator"),
	}, nil
}

// NeedLeaderElection makes controller-runtime run the Rotator on the leader only.
func (r *Rotator) NeedLeaderElection() bool { return true }

// Start runs the Rotator until ctx is done.
func (r *Rotator) Start(ctx context.Context) error {
	r.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, time.Minute),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "cert-rotator"},
	)
	defer r.queue.ShutDown()

	trigger := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.queue.Add(syncKey) },
		UpdateFunc: func(any, any) { r.queue.Add(syncKey) },
		DeleteFunc: func(any) { r.queue.Add(syncKey) },
	}
	// The Secret informer watches one object, which also lets RBAC restrict list and
	// watch to that resourceName.
	secrets := informers.NewSharedInformerFactoryWithOptions(r.kube, r.resync,
		informers.WithNamespace(r.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", r.secretName).String()
		}))
	cluster := informers.NewSharedInformerFactory(r.kube, r.resync)
	aggregated := aggregatorinformers.NewSharedInformerFactory(r.aggregator, r.resync)

	if _, err := secrets.Core().V1().Secrets().Informer().AddEventHandler(trigger); err != nil {
		return fmt.Errorf("watching Secret: %w", err)
	}
	if len(r.webhookConfigs) > 0 {
		inf := cluster.Admissionregistration().V1().ValidatingWebhookConfigurations().Informer()
		if _, err := inf.AddEventHandler(r.filtered(r.webhookConfigs, trigger)); err != nil {
			return fmt.Errorf("watching ValidatingWebhookConfigurations: %w", err)
		}
	}
	if len(r.mutatingConfigs) > 0 {
		inf := cluster.Admissionregistration().V1().MutatingWebhookConfigurations().Informer()
		if _, err := inf.AddEventHandler(r.filtered(r.mutatingConfigs, trigger)); err != nil {
			return fmt.Errorf("watching MutatingWebhookConfigurations: %w", err)
		}
	}
	if len(r.apiServices) > 0 {
		inf := aggregated.Apiregistration().V1().APIServices().Informer()
		if _, err := inf.AddEventHandler(r.filtered(r.apiServices, trigger)); err != nil {
			return fmt.Errorf("watching APIServices: %w", err)
		}
	}
	for _, f := range []interface{ Start(<-chan struct{}) }{secrets, cluster, aggregated} {
		f.Start(ctx.Done())
	}
	defer secrets.Shutdown()
	defer cluster.Shutdown()
	defer aggregated.Shutdown()

	if !r.serving {
		r.webhookConfigs, r.mutatingConfigs, r.apiServices = nil, nil, nil
	}
	r.log.Info("Starting certificate rotator", "secret", r.namespace+"/"+r.secretName, "servingCertificate", r.serving,
		"webhookConfigurations", r.webhookConfigs, "mutatingWebhookConfigurations", r.mutatingConfigs, "apiServices", r.apiServices)
	r.queue.Add(syncKey)
	go func() {
		<-ctx.Done()
		r.queue.ShutDown()
	}()
	for r.processNext(ctx) {
	}
	return nil
}

func (r *Rotator) filtered(names []string, h cache.ResourceEventHandler) cache.ResourceEventHandler {
	return cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			m, err := meta.Accessor(obj)
			return err == nil && slices.Contains(names, m.GetName())
		},
		Handler: h,
	}
}

func (r *Rotator) processNext(ctx context.Context) bool {
	key, shutdown := r.queue.Get()
	if shutdown {
		return false
	}
	defer r.queue.Done(key)
	after, err := r.Sync(ctx)
	if err != nil {
		certificateSyncErrors.Inc()
		utilruntime.HandleErrorWithContext(ctx, err, "Certificate sync failed; retrying", "secret", r.namespace+"/"+r.secretName)
		r.queue.AddRateLimited(key)
		return true
	}
	r.queue.Forget(key)
	r.queue.AddAfter(key, after)
	return true
}

// Sync brings the Secret and the injected bundles up to date once and returns how
// long to wait before the next check.
func (r *Rotator) Sync(ctx context.Context) (time.Duration, error) {
	secret, err := r.getOrCreateSecret(ctx)
	if err != nil {
		return 0, err
	}
	next := r.now().Add(r.resync)
	if r.serving {
		if secret, next, err = r.syncServing(ctx, secret); err != nil {
			return 0, err
		}
	}
	agentletNext, err := r.syncAgentletCA(ctx, secret)
	if err != nil {
		return 0, err
	}
	if agentletNext.Before(next) {
		next = agentletNext
	}

	wait := next.Sub(r.now())
	if wait < 0 {
		wait = 0
	}
	if r.resync > 0 && wait > r.resync {
		wait = r.resync
	}
	return wait, nil
}

// syncServing keeps the serving CA and certificate and injects the bundle.
func (r *Rotator) syncServing(ctx context.Context, secret *corev1.Secret) (*corev1.Secret, time.Time, error) {
	now := r.now()
	step, err := r.policy.Plan(now, ParseState(secret.Data, secret.Annotations))
	if err != nil {
		return nil, time.Time{}, err
	}
	state := step.State
	if step.Changed {
		if secret, err = r.writeSecret(ctx, secret, servingKeys, state); err != nil {
			return nil, time.Time{}, err
		}
		r.log.Info("Updated certificates", "secret", r.namespace+"/"+r.secretName, "actions", step.Actions)
	}

	if err := r.inject(ctx, state.TrustBundle()); err != nil {
		return nil, time.Time{}, err
	}

	next := step.NextCheck
	if state.Next != nil && state.NextTrustedSince.IsZero() {
		// The staged CA is now in every bundle: start the propagation clock. The time is
		// taken after the injection, so the delay is measured from the slowest target.
		state.NextTrustedSince = r.now()
		if secret, err = r.writeSecret(ctx, secret, servingKeys, state); err != nil {
			return nil, time.Time{}, err
		}
		r.log.Info("Staged CA injected into every target; promoting after the propagation delay",
			"ca", describe(state.Next.Cert), "delay", r.policy.PropagationDelay)
		next = state.NextTrustedSince.Add(r.policy.PropagationDelay)
	}
	certificateNotAfter.WithLabelValues("ca").Set(float64(state.CA.Cert.NotAfter.Unix()))
	return secret, next, nil
}

// syncAgentletCA keeps the agentlet CA. Its only trusting parties are the manager's
// own agentlet clients, which read the bundle from this Secret: a staged agentlet CA
// is trusted as soon as it is written, and promoted PropagationDelay later (the time
// every replica's informer needs to see it).
func (r *Rotator) syncAgentletCA(ctx context.Context, secret *corev1.Secret) (time.Time, error) {
	now := r.now()
	step, err := r.policy.PlanCA(now, ParseAgentletState(secret.Data, secret.Annotations))
	if err != nil {
		return time.Time{}, err
	}
	state := step.State
	next := step.NextCheck
	if state.Next != nil && state.NextTrustedSince.IsZero() {
		state.NextTrustedSince = now
		step.Changed = true
		next = now.Add(r.policy.PropagationDelay)
	}
	if step.Changed {
		if _, err := r.writeSecret(ctx, secret, agentletKeys, state); err != nil {
			return time.Time{}, err
		}
		r.log.Info("Updated the agentlet CA", "secret", r.namespace+"/"+r.secretName, "actions", step.Actions)
	}
	certificateNotAfter.WithLabelValues("agentlet-ca").Set(float64(state.CA.Cert.NotAfter.Unix()))
	return next, nil
}

func (r *Rotator) getOrCreateSecret(ctx context.Context) (*corev1.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	secrets := r.kube.CoreV1().Secrets(r.namespace)
	secret, err := secrets.Get(ctx, r.secretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Ship an empty Secret in the manifests so RBAC need not allow create; creating
		// it here covers installs that did not.
		secret, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: r.secretName, Namespace: r.namespace},
			Type:       corev1.SecretTypeOpaque,
		}, metav1.CreateOptions{FieldManager: FieldManager})
		if err == nil {
			certificateWrites.WithLabelValues("secret").Inc()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", r.namespace, r.secretName, err)
	}
	return secret, nil
}

// writeSecret replaces the Secret's certificate data with state. The update carries
// the resourceVersion that was read, so two writers never silently overwrite each
// other.
func (r *Rotator) writeSecret(ctx context.Context, secret *corev1.Secret, keys keySet, state *State) (*corev1.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	updated := secret.DeepCopy()
	if updated.Data == nil {
		updated.Data = map[string][]byte{}
	}
	for _, k := range keys.all() {
		delete(updated.Data, k)
	}
	for k, v := range state.data(keys) {
		updated.Data[k] = v
	}
	if state.Next != nil && !state.NextTrustedSince.IsZero() {
		metav1.SetMetaDataAnnotation(&updated.ObjectMeta, keys.trustedSince, state.NextTrustedSince.UTC().Format(time.RFC3339Nano))
	} else {
		delete(updated.Annotations, keys.trustedSince)
	}
	out, err := r.kube.CoreV1().Secrets(r.namespace).Update(ctx, updated, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return nil, fmt.Errorf("writing Secret %s/%s: %w", r.namespace, r.secretName, err)
	}
	certificateWrites.WithLabelValues("secret").Inc()
	return out, nil
}

// inject sets caBundle on every webhook of the webhook configurations and on the
// APIServices. Targets that do not exist are skipped: they belong to the manifests,
// and the informers trigger a sync when they appear.
func (r *Rotator) inject(ctx context.Context, bundle []byte) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	for _, name := range r.webhookConfigs {
		if err := r.injectWebhookConfiguration(ctx, name, bundle); err != nil {
			return err
		}
	}
	for _, name := range r.mutatingConfigs {
		if err := r.injectMutatingWebhookConfiguration(ctx, name, bundle); err != nil {
			return err
		}
	}
	for _, name := range r.apiServices {
		if err := r.injectAPIService(ctx, name, bundle); err != nil {
			return err
		}
	}
	return nil
}

func (r *Rotator) injectWebhookConfiguration(ctx context.Context, name string, bundle []byte) error {
	return injectWebhookCABundle(ctx, r, r.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations(),
		"ValidatingWebhookConfiguration", "validatingWebhookConfiguration", name, bundle,
		func(c *admissionregistrationv1.ValidatingWebhookConfiguration) []*admissionregistrationv1.WebhookClientConfig {
			return clientConfigs(c.Webhooks, func(w *admissionregistrationv1.ValidatingWebhook) *admissionregistrationv1.WebhookClientConfig {
				return &w.ClientConfig
			})
		})
}

func (r *Rotator) injectMutatingWebhookConfiguration(ctx context.Context, name string, bundle []byte) error {
	return injectWebhookCABundle(ctx, r, r.kube.AdmissionregistrationV1().MutatingWebhookConfigurations(),
		"MutatingWebhookConfiguration", "mutatingWebhookConfiguration", name, bundle,
		func(c *admissionregistrationv1.MutatingWebhookConfiguration) []*admissionregistrationv1.WebhookClientConfig {
			return clientConfigs(c.Webhooks, func(w *admissionregistrationv1.MutatingWebhook) *admissionregistrationv1.WebhookClientConfig {
				return &w.ClientConfig
			})
		})
}

// webhookConfigurations is the part of the typed client of Validating- or
// MutatingWebhookConfigurations that injection uses.
type webhookConfigurations[T runtime.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// clientConfigs points at the client configuration of each webhook.
func clientConfigs[W any](webhooks []W, config func(*W) *admissionregistrationv1.WebhookClientConfig) []*admissionregistrationv1.WebhookClientConfig {
	out := make([]*admissionregistrationv1.WebhookClientConfig, len(webhooks))
	for i := range webhooks {
		out[i] = config(&webhooks[i])
	}
	return out
}

// injectWebhookCABundle sets bundle as the caBundle of every webhook of the
// configuration name of kind (logged under logKey); a missing configuration
// is not an error: there is nothing to inject into.
func injectWebhookCABundle[T runtime.Object](ctx context.Context, r *Rotator, client webhookConfigurations[T],
	kind, logKey, name string, bundle []byte, clientConfigs func(T) []*admissionregistrationv1.WebhookClientConfig) error {
	cur, err := client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		r.log.V(1).Info(kind+" not found; not injecting", "name", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	updated := cur.DeepCopyObject().(T)
	changed := false
	for _, cc := range clientConfigs(updated) {
		if !bytes.Equal(cc.CABundle, bundle) {
			cc.CABundle = bundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := client.Update(ctx, updated, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("injecting caBundle into %s %s: %w", kind, name, err)
	}
	certificateWrites.WithLabelValues("webhookconfiguration").Inc()
	r.log.Info("Injected caBundle", logKey, name, "certificates", len(parseCerts(bundle)))
	return nil
}

func (r *Rotator) injectAPIService(ctx context.Context, name string, bundle []byte) error {
	client := r.aggregator.ApiregistrationV1().APIServices()
	svc, err := client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		r.log.V(1).Info("APIService not found; not injecting", "name", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading APIService %s: %w", name, err)
	}
	if bytes.Equal(svc.Spec.CABundle, bundle) {
		return nil
	}
	updated := svc.DeepCopy()
	updated.Spec.CABundle = bundle
	// A caBundle and insecureSkipTLSVerify are mutually exclusive.
	updated.Spec.InsecureSkipTLSVerify = false
	if _, err := client.Update(ctx, updated, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("injecting caBundle into APIService %s: %w", name, err)
	}
	certificateWrites.WithLabelValues("apiservice").Inc()
	r.log.Info("Injected caBundle", "apiService", name, "certificates", len(parseCerts(bundle)))
	return nil
}
