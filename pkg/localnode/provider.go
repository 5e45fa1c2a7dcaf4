//go:build linux

package localnode

import (
	"context"
	"io"
	"os"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// provider is virtual-kubelet's view of localnode: the pod lifecycle
// (PodLifecycleHandler + PodNotifier) and the node (NodeProvider).
type provider struct {
	n *Node

	mu   sync.Mutex
	pods map[string]*podRuntime // namespace/name

	cbMu sync.Mutex
	cb   func(*corev1.Pod)

	// lister is virtual-kubelet's view of the pods bound to the node.
	lister corev1listers.PodLister
}

func newProvider(n *Node) *provider {
	return &provider{n: n, pods: map[string]*podRuntime{}}
}

func (pr *provider) lookup(namespace, name string) *podRuntime {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.pods[namespace+"/"+name]
}

func (pr *provider) all() []*podRuntime {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	out := make([]*podRuntime, 0, len(pr.pods))
	for _, p := range pr.pods {
		out = append(out, p)
	}
	return out
}

// notify reports a pod's status to virtual-kubelet, unless the pod has been
// handed back (deleted), whose object is going away.
func (pr *provider) notify(pod *corev1.Pod) {
	pr.mu.Lock()
	p, ok := pr.pods[pod.Namespace+"/"+pod.Name]
	pr.mu.Unlock()
	if !ok || p.uid != pod.UID {
		return
	}
	pr.cbMu.Lock()
	cb := pr.cb
	pr.cbMu.Unlock()
	if cb != nil {
		cb(pod)
	}
}

// CreatePod starts a pod bound to this node.
func (pr *provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	key := pod.Namespace + "/" + pod.Name
	if pr.n.ctx.Err() != nil {
		return errdefs.InvalidInput("localnode is shutting down")
	}
	pr.mu.Lock()
	if old, ok := pr.pods[key]; ok {
		if old.uid == pod.UID {
			pr.mu.Unlock()
			old.update(pod)
			return nil
		}
		// A new pod of the same name: the earlier one is gone from the API
		// (its processes may still be stopping). Make sure it stops, and let
		// the new one take the name.
		delete(pr.pods, key)
		pr.mu.Unlock()
		prev := old.current().DeepCopy()
		zero := int64(0)
		prev.DeletionGracePeriodSeconds = &zero
		_ = pr.deleteRuntime(old, prev)
		pr.mu.Lock()
	}
	p, err := pr.n.newPodRuntime(pod)
	if err != nil {
		pr.mu.Unlock()
		return err
	}
	pr.pods[key] = p
	pr.mu.Unlock()
	pr.n.log.Info("starting pod", "pod", key, "uid", pod.UID, "ip", p.ipString())
	go p.run()
	return nil
}

// UpdatePod applies changes of labels, annotations and images.
func (pr *provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	p := pr.lookup(pod.Namespace, pod.Name)
	if p == nil || p.uid != pod.UID {
		return errdefs.NotFoundf("pod %s/%s not found", pod.Namespace, pod.Name)
	}
	p.update(pod)
	return nil
}

// DeletePod stops the pod's processes (SIGTERM, then SIGKILL after the grace
// period) in the background, then reports the final status and removes the
// pod object, as a kubelet finishes a graceful deletion.
func (pr *provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	p := pr.lookup(pod.Namespace, pod.Name)
	if p == nil || p.uid != pod.UID {
		return errdefs.NotFoundf("pod %s/%s not found", pod.Namespace, pod.Name)
	}
	return pr.deleteRuntime(p, pod)
}

func (pr *provider) deleteRuntime(p *podRuntime, pod *corev1.Pod) error {
	grace := p.gracePeriod(pod.DeletionGracePeriodSeconds)
	p.mu.Lock()
	if pod.DeletionTimestamp != nil {
		np := p.pod.DeepCopy()
		np.DeletionTimestamp = pod.DeletionTimestamp
		np.DeletionGracePeriodSeconds = pod.DeletionGracePeriodSeconds
		p.pod = np
	}
	already := p.deleting
	p.deleting = true
	p.mu.Unlock()
	if already || pr.n.ctx.Err() != nil {
		// Shutting down: localnode stops every pod itself.
		return nil
	}
	pr.n.log.Info("stopping pod", "pod", p.key, "grace", grace)
	pr.n.wg.Add(1)
	go func() {
		defer pr.n.wg.Done()
		p.stop(grace, true)
		p.mu.Lock()
		if !p.terminal {
			p.terminal = true
			p.phase = corev1.PodSucceeded
			for _, c := range p.appCs {
				if t := c.status.State.Terminated; t == nil || t.ExitCode != 0 {
					p.phase = corev1.PodFailed
				}
			}
		}
		p.mu.Unlock()
		pr.mu.Lock()
		if pr.pods[p.key] == p {
			delete(pr.pods, p.key)
		}
		pr.mu.Unlock()
		if pr.n.ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			p.deleteFromAPI(ctx)
			cancel()
		}
		_ = os.RemoveAll(p.dir)
		pr.n.log.Info("pod stopped", "pod", p.key)
	}()
	return nil
}

// GetPod answers virtual-kubelet's "do you run this pod?". Its question has no
// UID: when the API now holds another pod of that name (the one localnode runs
// was force-deleted and the name reused before virtual-kubelet saw the
// deletion), the answer is no, so that virtual-kubelet creates the new pod
// (CreatePod then stops the old one).
func (pr *provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	p := pr.current(namespace, name)
	if p == nil {
		return nil, errdefs.NotFoundf("pod %s/%s not found", namespace, name)
	}
	return p.apiPod(), nil
}

// current is lookup, except for a pod whose name the API has given to
// another pod.
func (pr *provider) current(namespace, name string) *podRuntime {
	p := pr.lookup(namespace, name)
	if p == nil || pr.lister == nil {
		return p
	}
	if apiPod, err := pr.lister.Pods(namespace).Get(name); err == nil && apiPod.UID != p.uid {
		return nil
	}
	return p
}

func (pr *provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	p := pr.current(namespace, name)
	if p == nil {
		return nil, errdefs.NotFoundf("pod %s/%s not found", namespace, name)
	}
	pod := p.apiPod()
	return &pod.Status, nil
}

func (pr *provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, p := range pr.all() {
		out = append(out, p.apiPod())
	}
	return out, nil
}

// NotifyPods registers virtual-kubelet's status callback.
func (pr *provider) NotifyPods(ctx context.Context, cb func(*corev1.Pod)) {
	pr.cbMu.Lock()
	pr.cb = cb
	pr.cbMu.Unlock()
}

// The rest of virtual-kubelet's Provider interface.

func (pr *provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	return pr.n.GetContainerLogs(ctx, namespace, podName, containerName, opts)
}

func (pr *provider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	return pr.n.RunInContainer(ctx, namespace, podName, containerName, cmd, attach)
}

func (pr *provider) AttachToContainer(ctx context.Context, namespace, podName, containerName string, attach api.AttachIO) error {
	return pr.n.AttachToContainer(ctx, namespace, podName, containerName, attach)
}

func (pr *provider) PortForward(ctx context.Context, namespace, pod string, port int32, stream io.ReadWriteCloser) error {
	return pr.n.PortForward(ctx, namespace, pod, port, stream)
}

func (pr *provider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return nil, errdefs.InvalidInput("stats are not implemented by localnode")
}

func (pr *provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, errdefs.InvalidInput("metrics are not implemented by localnode")
}

// nodeProvider keeps the Node's status; localnode is healthy while it runs.
type nodeProvider struct{}

func (nodeProvider) Ping(context.Context) error                           { return nil }
func (nodeProvider) NotifyNodeStatus(context.Context, func(*corev1.Node)) {}
