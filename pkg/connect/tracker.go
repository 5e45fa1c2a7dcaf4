package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// kind is one resource type of the cluster view.
type kind struct {
	name    string
	newObj  func() client.Object
	newList func() client.ObjectList
}

// kinds are the agentkube resources and their pods, in snapshot order.
var kinds = []kind{
	{"Agent", func() client.Object { return &agentkubev1alpha1.Agent{} }, func() client.ObjectList { return &agentkubev1alpha1.AgentList{} }},
	{"AgentRun", func() client.Object { return &agentkubev1alpha1.AgentRun{} }, func() client.ObjectList { return &agentkubev1alpha1.AgentRunList{} }},
	{"Tool", func() client.Object { return &agentkubev1alpha1.Tool{} }, func() client.ObjectList { return &agentkubev1alpha1.ToolList{} }},
	{"MCP", func() client.Object { return &agentkubev1alpha1.MCP{} }, func() client.ObjectList { return &agentkubev1alpha1.MCPList{} }},
	{"LLMGateway", func() client.Object { return &agentkubev1alpha1.LLMGateway{} }, func() client.ObjectList { return &agentkubev1alpha1.LLMGatewayList{} }},
	{"Claw", func() client.Object { return &agentkubev1alpha1.Claw{} }, func() client.ObjectList { return &agentkubev1alpha1.ClawList{} }},
	{"Pod", func() client.Object { return &corev1.Pod{} }, func() client.ObjectList { return &corev1.PodList{} }},
}

func kindByName(name string) (kind, bool) {
	for _, k := range kinds {
		if k.name == name {
			return k, true
		}
	}
	return kind{}, false
}

// tracker turns informer events into a dirty set of object keys. It never
// copies objects on the event path: when deltas are flushed, each dirty
// key is read from the cache as it is then, so a burst of changes to one
// object costs one delta carrying its latest state, and a change that the
// snapshot already contains is at worst sent twice, never lost.
type tracker struct {
	cache       cache.Cache
	podSelector labels.Selector

	mu      sync.Mutex
	dirty   map[tunnel.ObjectKey]struct{}
	waiters map[tunnel.ObjectKey][]chan struct{}
	notify  chan struct{} // cap 1: dirty became non-empty

	regs []registration
}

type registration struct {
	inf cache.Informer
	reg toolscache.ResourceEventHandlerRegistration
}

func newTracker(c cache.Cache, podSelector labels.Selector) *tracker {
	return &tracker{
		cache: c, podSelector: podSelector,
		dirty:   map[tunnel.ObjectKey]struct{}{},
		waiters: map[tunnel.ObjectKey][]chan struct{}{},
		notify:  make(chan struct{}, 1),
	}
}

// start registers event handlers on the manager's informers.
func (t *tracker) start(ctx context.Context) error {
	for _, k := range kinds {
		inf, err := t.cache.GetInformer(ctx, k.newObj())
		if err != nil {
			t.stop()
			return fmt.Errorf("informer for %s: %w", k.name, err)
		}
		name := k.name
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { t.observe(name, obj, nil) },
			UpdateFunc: func(old, obj any) { t.observe(name, obj, old) },
			DeleteFunc: func(obj any) { t.observe(name, obj, nil) },
		})
		if err != nil {
			t.stop()
			return fmt.Errorf("event handler for %s: %w", k.name, err)
		}
		t.regs = append(t.regs, registration{inf, reg})
	}
	return nil
}

func (t *tracker) stop() {
	for _, r := range t.regs {
		_ = r.inf.RemoveEventHandler(r.reg)
	}
	t.regs = nil
}

func (t *tracker) observe(kindName string, obj, old any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	o, ok := obj.(client.Object)
	if !ok {
		return
	}
	if kindName == "Pod" && !t.podSelector.Matches(labels.Set(o.GetLabels())) {
		// Only a pod that leaves the selection matters (as a delete).
		oldObj, ok := old.(client.Object)
		if !ok || !t.podSelector.Matches(labels.Set(oldObj.GetLabels())) {
			return
		}
	}
	key := tunnel.ObjectKey{Kind: kindName, Namespace: o.GetNamespace(), Name: o.GetName()}
	t.mu.Lock()
	t.dirty[key] = struct{}{}
	ws := t.waiters[key]
	t.mu.Unlock()
	for _, w := range ws {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// watch returns a channel signalled on every event of key, and its cancel.
func (t *tracker) watch(key tunnel.ObjectKey) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	t.mu.Lock()
	t.waiters[key] = append(t.waiters[key], ch)
	t.mu.Unlock()
	return ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		ws := t.waiters[key]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(t.waiters, key)
		} else {
			t.waiters[key] = ws
		}
	}
}

// resetDirty forgets pending changes; called right before a snapshot is
// listed, which contains them.
func (t *tracker) resetDirty() {
	t.mu.Lock()
	t.dirty = map[tunnel.ObjectKey]struct{}{}
	t.mu.Unlock()
}

// takeDirty returns and clears the dirty set.
func (t *tracker) takeDirty() map[tunnel.ObjectKey]struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.dirty
	if len(d) > 0 {
		t.dirty = map[tunnel.ObjectKey]struct{}{}
	}
	return d
}

// list reads every object of the view from the cache.
func (t *tracker) list(ctx context.Context) ([]tunnel.Object, error) {
	var out []tunnel.Object
	for _, k := range kinds {
		l := k.newList()
		var opts []client.ListOption
		if k.name == "Pod" {
			opts = append(opts, client.MatchingLabelsSelector{Selector: t.podSelector})
		}
		if err := t.cache.List(ctx, l, opts...); err != nil {
			return nil, fmt.Errorf("list %s from cache: %w", k.name, err)
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", k.name, err)
		}
		for _, it := range items {
			o, err := encode(k.name, it.(client.Object))
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// change reads key from the cache: its current state, or a delete.
func (t *tracker) change(ctx context.Context, key tunnel.ObjectKey) (tunnel.Change, error) {
	k, ok := kindByName(key.Kind)
	if !ok {
		return tunnel.Change{}, fmt.Errorf("unknown kind %q", key.Kind)
	}
	obj := k.newObj()
	err := t.cache.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, obj)
	gone := apierrors.IsNotFound(err) ||
		(err == nil && key.Kind == "Pod" && !t.podSelector.Matches(labels.Set(obj.GetLabels())))
	if gone {
		return tunnel.Change{Op: tunnel.OpDelete, Object: tunnel.Object{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name}}, nil
	}
	if err != nil {
		return tunnel.Change{}, fmt.Errorf("get %s %s/%s from cache: %w", key.Kind, key.Namespace, key.Name, err)
	}
	o, err := encode(key.Kind, obj)
	return tunnel.Change{Op: tunnel.OpUpsert, Object: o}, err
}

// encode renders an object for the wire, trimmed to what the dashboard
// shows (tunnel.Trim): the platform shows the view to every member with
// agents:read, so env values, run inputs, output, annotations and
// managedFields never leave the cluster. Cache objects are shared and are
// only read here.
func encode(kindName string, obj client.Object) (tunnel.Object, error) {
	b, err := json.Marshal(obj)
	if err == nil {
		b, err = tunnel.Trim(kindName, b)
	}
	if err != nil {
		return tunnel.Object{}, fmt.Errorf("encode %s %s/%s: %w", kindName, obj.GetNamespace(), obj.GetName(), err)
	}
	return tunnel.Object{
		Kind: kindName, Namespace: obj.GetNamespace(), Name: obj.GetName(),
		UID: string(obj.GetUID()), ResourceVersion: obj.GetResourceVersion(), Object: b,
	}, nil
}
