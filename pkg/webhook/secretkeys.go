package webhook

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// SecretKeys knows, for every Secret in the cluster, which keys hold a non-empty
// value, and nothing else. The Tool rule asks it instead of kube-apiserver, which
// takes a round trip off every Tool write's admission.
//
// Values never stay in memory: a transform replaces each Secret, as it arrives, with
// its name and a placeholder per non-empty key, and drops annotations (kubectl's
// last-applied-configuration carries the data) and managed fields.
type SecretKeys struct {
	factory informers.SharedInformerFactory
	lister  corelisters.SecretLister
	synced  cache.InformerSynced
}

// present marks a key whose value is not empty.
var present = []byte{1}

// NewSecretKeys makes a SecretKeys; it is empty until Start has synced it.
func NewSecretKeys(kube kubernetes.Interface) *SecretKeys {
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithTransform(stripSecret))
	informer := factory.Core().V1().Secrets()
	return &SecretKeys{factory: factory, lister: informer.Lister(), synced: informer.Informer().HasSynced}
}

func stripSecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil // DeletedFinalStateUnknown and the like
	}
	keys := make(map[string][]byte, len(s.Data))
	for k, v := range s.Data {
		if len(v) > 0 {
			keys[k] = present
		} else {
			keys[k] = nil
		}
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion},
		Type:       s.Type,
		Data:       keys,
	}, nil
}

// NeedLeaderElection is false: every replica serves admission.
func (k *SecretKeys) NeedLeaderElection() bool { return false }

// Start runs the informer until ctx is done.
func (k *SecretKeys) Start(ctx context.Context) error {
	k.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), k.synced) {
		k.factory.Shutdown()
		return nil // ctx done
	}
	klog.FromContext(ctx).Info("Secret key index synced")
	<-ctx.Done()
	k.factory.Shutdown()
	return nil
}

// lookup reports the Secret's keys and whether each is non-empty. ok is false when
// the index has not synced or does not know the Secret; callers then ask
// kube-apiserver, since the index may lag a Secret created a moment ago.
func (k *SecretKeys) lookup(namespace, name string) (keys map[string]bool, ok bool) {
	if k == nil || !k.synced() {
		return nil, false
	}
	s, err := k.lister.Secrets(namespace).Get(name)
	if err != nil {
		return nil, false
	}
	keys = make(map[string]bool, len(s.Data))
	for key, v := range s.Data {
		keys[key] = len(v) > 0
	}
	return keys, true
}
