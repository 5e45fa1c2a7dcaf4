//go:build linux

package localnode

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// binder is a stand-in for kube-scheduler in clusters that have none (a bare
// kube-apiserver in tests, `make run`): it binds pending pods without a node to
// this node when the pod's schedulerName, nodeSelector, required node affinity
// and tolerations allow. It does not look at resources.
type binder struct {
	n     *Node
	queue workqueue.TypedRateLimitingInterface[string]
}

func (n *Node) runBinder(ctx context.Context) {
	b := &binder{n: n, queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	factory := informers.NewSharedInformerFactoryWithOptions(n.client, 10*time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.AndSelectors(
				fields.OneTermEqualSelector("spec.nodeName", ""),
				fields.OneTermNotEqualSelector("status.phase", string(corev1.PodSucceeded)),
				fields.OneTermNotEqualSelector("status.phase", string(corev1.PodFailed)),
			).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			b.queue.Add(key)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }})
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		b.queue.ShutDown()
	}()
	cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
	for {
		key, quit := b.queue.Get()
		if quit {
			factory.Shutdown()
			return
		}
		obj, exists, err := inf.GetIndexer().GetByKey(key)
		if err == nil && exists {
			if err := b.bind(ctx, obj.(*corev1.Pod)); err != nil {
				n.log.Warn("binding pod", "pod", key, "err", err)
				b.queue.AddRateLimited(key)
				b.queue.Done(key)
				continue
			}
		}
		b.queue.Forget(key)
		b.queue.Done(key)
	}
}

func (b *binder) bind(ctx context.Context, pod *corev1.Pod) error {
	n := b.n
	if pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil {
		return nil
	}
	if s := pod.Spec.SchedulerName; s != "" && s != corev1.DefaultSchedulerName {
		return nil
	}
	if ok, why := n.fits(pod); !ok {
		n.log.Debug("pod does not fit", "pod", pod.Namespace+"/"+pod.Name, "reason", why)
		return nil
	}
	err := n.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: n.opts.NodeName},
	}, metav1.CreateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // bound by someone else, or gone
	}
	if err == nil {
		n.event(pod, nil, corev1.EventTypeNormal, "Scheduled", fmt.Sprintf("Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, n.opts.NodeName))
	}
	return err
}

// fits checks nodeSelector, required node affinity and taints.
func (n *Node) fits(pod *corev1.Pod) (bool, string) {
	labels := n.nodeLabels()
	for k, v := range pod.Spec.NodeSelector {
		if labels[k] != v {
			return false, "nodeSelector " + k + "=" + v
		}
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		ok := false
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			if n.termMatches(term, labels) {
				ok = true
				break
			}
		}
		if !ok {
			return false, "required node affinity"
		}
	}
	for i := range n.opts.Taints {
		t := &n.opts.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		tolerated := false
		for j := range pod.Spec.Tolerations {
			if pod.Spec.Tolerations[j].ToleratesTaint(klog.Background(), t, false) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return false, "untolerated taint " + t.ToString()
		}
	}
	return true, ""
}

func (n *Node) termMatches(term corev1.NodeSelectorTerm, labels map[string]string) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	for _, r := range term.MatchExpressions {
		if !requirementMatches(r, labels) {
			return false
		}
	}
	for _, r := range term.MatchFields {
		if r.Key != "metadata.name" || !requirementMatches(corev1.NodeSelectorRequirement{Key: "name", Operator: r.Operator, Values: r.Values}, map[string]string{"name": n.opts.NodeName}) {
			return false
		}
	}
	return true
}

func requirementMatches(r corev1.NodeSelectorRequirement, labels map[string]string) bool {
	v, has := labels[r.Key]
	in := func() bool {
		for _, x := range r.Values {
			if x == v {
				return true
			}
		}
		return false
	}
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return has && in()
	case corev1.NodeSelectorOpNotIn:
		return !has || !in()
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !has || len(r.Values) != 1 {
			return false
		}
		a, err1 := strconv.ParseInt(v, 10, 64)
		b, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return a > b
		}
		return a < b
	}
	return false
}
