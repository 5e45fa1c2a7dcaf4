package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// Watcher serves the certificate of the Secret to TLS servers and reloads it when the
// Secret changes, without a restart. Every replica runs one.
//
// It watches the Secret through the API rather than a mounted volume: the kubelet
// refreshes Secret volumes only every sync period (a minute or more), while an
// informer sees a rotation within a round trip. That keeps the window in which a
// replica serves a superseded certificate short; the rotation's overlap makes even a
// long window safe.
//
// Use GetCertificate in a tls.Config (controller-runtime's webhook server takes it
// through TLSOpts), or the Watcher itself as a k8s.io/apiserver
// dynamiccertificates.CertKeyContentProvider (SecureServingInfo.Cert).
type Watcher struct {
	namespace, name string
	kube            kubernetes.Interface
	log             logr.Logger

	current  atomic.Pointer[servingCert]
	agentlet atomic.Pointer[agentletCA]

	mu                sync.Mutex
	listeners         []dynamiccertificates.Listener
	agentletListeners []chan struct{}
	loaded            chan struct{}
	loadOnce          sync.Once
}

type servingCert struct {
	tls             *tls.Certificate
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
}

var _ dynamiccertificates.CertKeyContentProvider = (*Watcher)(nil)

// NewWatcher makes a Watcher for the Secret namespace/name; it loads nothing until
// Start.
func NewWatcher(kube kubernetes.Interface, namespace, name string) *Watcher {
	return &Watcher{
		namespace: namespace,
		name:      name,
		kube:      kube,
		log:       klog.Background().WithName("cert-watcher"),
		loaded:    make(chan struct{}),
	}
}

// NeedLeaderElection is false: every replica serves.
func (w *Watcher) NeedLeaderElection() bool { return false }

// Start watches the Secret until ctx is done.
func (w *Watcher) Start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(w.kube, 0,
		informers.WithNamespace(w.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", w.name).String()
		}))
	informer := factory.Core().V1().Secrets().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.update(obj) },
		UpdateFunc: func(_, obj any) { w.update(obj) },
		// A deleted Secret keeps the last certificate: the leader recreates the Secret,
		// and serving an old certificate beats serving none.
	}); err != nil {
		return fmt.Errorf("watching Secret %s/%s: %w", w.namespace, w.name, err)
	}
	w.log.Info("Watching serving certificate", "secret", w.namespace+"/"+w.name)
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

func (w *Watcher) update(obj any) {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	w.updateAgentletCA(secret)
	certPEM, keyPEM := secret.Data[SecretKeyServingCert], secret.Data[SecretKeyServingKey]
	if len(certPEM) == 0 && len(keyPEM) == 0 {
		return // not bootstrapped yet
	}
	if cur := w.current.Load(); cur != nil && bytes.Equal(cur.certPEM, certPEM) && bytes.Equal(cur.keyPEM, keyPEM) {
		return
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// Keep serving the last good certificate; the writer will fix the Secret.
		w.log.Error(err, "Ignoring unusable serving certificate", "secret", w.namespace+"/"+w.name)
		return
	}
	w.current.Store(&servingCert{tls: &pair, certPEM: certPEM, keyPEM: keyPEM, leaf: pair.Leaf})
	certificateNotAfter.WithLabelValues("serving").Set(float64(pair.Leaf.NotAfter.Unix()))
	w.log.Info("Loaded serving certificate", "certificate", describe(pair.Leaf), "issuer", pair.Leaf.Issuer.CommonName)
	w.loadOnce.Do(func() { close(w.loaded) })

	w.mu.Lock()
	listeners := append([]dynamiccertificates.Listener(nil), w.listeners...)
	w.mu.Unlock()
	for _, l := range listeners {
		l.Enqueue()
	}
}

// GetCertificate is a tls.Config.GetCertificate that returns the current certificate.
func (w *Watcher) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cur := w.current.Load()
	if cur == nil {
		return nil, errNoCertificate
	}
	return cur.tls, nil
}

// Current returns the certificate being served, or nil before the first load.
func (w *Watcher) Current() *x509.Certificate {
	if cur := w.current.Load(); cur != nil {
		return cur.leaf
	}
	return nil
}

// WaitForCertificate blocks until a certificate is loaded or ctx is done.
func (w *Watcher) WaitForCertificate(ctx context.Context) error {
	select {
	case <-w.loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a serving certificate in Secret %s/%s: %w", w.namespace, w.name, ctx.Err())
	}
}

// Checker is a healthz.Checker for readyz: a replica without a certificate cannot
// serve the webhook or the aggregated API.
func (w *Watcher) Checker(*http.Request) error {
	cur := w.current.Load()
	if cur == nil {
		return fmt.Errorf("%w from Secret %s/%s", errNoCertificate, w.namespace, w.name)
	}
	if time.Now().After(cur.leaf.NotAfter) {
		return fmt.Errorf("serving certificate %s has expired", describe(cur.leaf))
	}
	return nil
}

// Name implements dynamiccertificates.CertKeyContentProvider.
func (w *Watcher) Name() string { return "secret/" + w.namespace + "/" + w.name }

// CurrentCertKeyContent implements dynamiccertificates.CertKeyContentProvider.
func (w *Watcher) CurrentCertKeyContent() ([]byte, []byte) {
	if cur := w.current.Load(); cur != nil {
		return cur.certPEM, cur.keyPEM
	}
	return nil, nil
}

// AddListener implements dynamiccertificates.Notifier: listeners are told when the
// certificate changes.
func (w *Watcher) AddListener(l dynamiccertificates.Listener) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.listeners = append(w.listeners, l)
}
