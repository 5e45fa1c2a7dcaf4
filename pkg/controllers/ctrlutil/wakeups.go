package ctrlutil

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Wakeups enqueues objects at times measured on an injectable clock. It
// replaces RequeueAfter where a test must control time: with a fake clock,
// stepping the clock past a wake-up enqueues the object at once. One timer is
// kept per object; scheduling again replaces it.
type Wakeups struct {
	clock clock.WithDelayedExecution

	// queue is read by timer callbacks without taking mu: the fake clock
	// runs callbacks under its own lock, and At takes mu before the clock's,
	// so taking mu in a callback could deadlock.
	queue atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]

	mu     sync.Mutex
	timers map[types.NamespacedName]clock.Timer
}

// NewWakeups returns wake-ups driven by c.
func NewWakeups(c clock.WithDelayedExecution) *Wakeups {
	return &Wakeups{clock: c, timers: map[types.NamespacedName]clock.Timer{}}
}

// Source is the controller source that delivers the wake-ups; pass it to
// WatchesRawSource.
func (w *Wakeups) Source() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		w.queue.Store(&q)
		return nil
	})
}

// At enqueues key after d, replacing any earlier wake-up of key.
func (w *Wakeups) At(key types.NamespacedName, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.timers[key]; ok {
		t.Stop()
	}
	// The fake clock runs the callback while holding its own lock, so the
	// callback must neither block nor call the clock: adding to the queue
	// does neither.
	w.timers[key] = w.clock.AfterFunc(d, func() {
		if q := w.queue.Load(); q != nil {
			(*q).Add(reconcile.Request{NamespacedName: key})
		}
	})
}

// Cancel drops key's wake-up.
func (w *Wakeups) Cancel(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.timers[key]; ok {
		t.Stop()
		delete(w.timers, key)
	}
}
