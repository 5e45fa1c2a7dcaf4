package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

// readiness backs /readyz: ready once the informer of every kind the
// controllers read has synced and every HTTP endpoint of the process accepts
// connections. Before that, a Service must not send traffic here and a
// rollout must not proceed.
type readiness struct {
	cache     cache.Cache
	handler   *healthz.Handler
	mu        sync.Mutex
	endpoints []*trackedListener
	synced    atomic.Bool
}

// watchedKinds are the objects the controllers' informers hold.
func watchedKinds() []client.Object {
	meta := func(kind string) client.Object {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
		return m
	}
	return []client.Object{
		&agentkubev1alpha1.Agent{}, &agentkubev1alpha1.AgentRun{}, &agentkubev1alpha1.Tool{},
		&agentkubev1alpha1.MCP{}, &agentkubev1alpha1.LLMGateway{}, &agentkubev1alpha1.Claw{},
		&corev1.Pod{}, &corev1.Service{}, &appsv1.Deployment{}, &batchv1.Job{},
		meta("Secret"), meta("ConfigMap"),
	}
}

func (r *readiness) informersSynced(req *http.Request) error {
	if r.synced.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(req.Context(), time.Second)
	defer cancel()
	var pending []string
	for _, obj := range watchedKinds() {
		// Non-blocking: an informer that does not exist yet is created
		// (and started once the cache runs) and reported as not synced.
		inf, err := r.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil || !inf.HasSynced() {
			pending = append(pending, fmt.Sprintf("%T", obj))
		}
	}
	if len(pending) > 0 {
		return fmt.Errorf("informers not synced: %s", strings.Join(pending, ", "))
	}
	// Informers stay synced once synced; later checks are free.
	r.synced.Store(true)
	return nil
}

func (r *readiness) endpointsServing(*http.Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var down []string
	for _, l := range r.endpoints {
		if !l.serving.Load() {
			down = append(down, l.name)
		}
	}
	if len(down) > 0 {
		return errors.New("not serving yet: " + strings.Join(down, ", "))
	}
	return nil
}

// track wraps ln so readiness knows when a server has started accepting.
func (r *readiness) track(name string, ln net.Listener) net.Listener {
	tl := &trackedListener{Listener: ln, name: name}
	r.mu.Lock()
	r.endpoints = append(r.endpoints, tl)
	r.mu.Unlock()
	return tl
}

// TrackListener wraps ln so /readyz waits until a server accepts on it. Use
// it for servers other packages add to this process.
func (m *Manager) TrackListener(name string, ln net.Listener) net.Listener {
	return m.readiness.track(name, ln)
}

type trackedListener struct {
	net.Listener
	name    string
	serving atomic.Bool
}

// Accept marks the listener serving: http.Server.Serve calls it as soon as
// it runs.
func (l *trackedListener) Accept() (net.Conn, error) {
	l.serving.Store(true)
	return l.Listener.Accept()
}
