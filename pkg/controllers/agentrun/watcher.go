package agentrun

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	agentletclient "github.com/exo-in-go/exo/pkg/agentlet/client"
)

// watchers follow the output stream of every run in progress. The agentlet
// ends a followed stream when the run ends, which makes the stream the
// quickest completion signal there is; when it ends (or breaks) the run is
// reconciled, which asks the agentlet for the final status. Polling remains
// as the fallback for anything the stream misses.
type watchers struct {
	queue  atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]
	ctx    atomic.Pointer[context.Context]
	mu     sync.Mutex
	active map[types.UID]*watch
	retry  time.Duration
}

type watch struct{ cancel context.CancelFunc }

func newWatchers(retry time.Duration) *watchers {
	return &watchers{active: map[types.UID]*watch{}, retry: retry}
}

// source hands the watchers the controller's queue and its lifetime.
func (w *watchers) source() source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		w.ctx.Store(&ctx)
		w.queue.Store(&q)
		return nil
	})
}

// ensure starts following run uid unless already done.
func (w *watchers) ensure(uid types.UID, key types.NamespacedName, c *agentletclient.Client, runID string) {
	parent := w.ctx.Load()
	if parent == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.active[uid]; ok {
		return
	}
	ctx, cancel := context.WithCancel(*parent)
	entry := &watch{cancel: cancel}
	w.active[uid] = entry
	go func() {
		streamErr := error(nil)
		defer func() {
			stopped := ctx.Err() != nil // stop() or the manager shutting down
			cancel()
			w.mu.Lock()
			if w.active[uid] == entry {
				delete(w.active, uid)
			}
			w.mu.Unlock()
			q := w.queue.Load()
			switch {
			case q == nil || stopped:
			case streamErr != nil:
				// A broken stream must not turn into a hot loop of
				// reconciles and reconnects: come back after a pause.
				(*q).AddAfter(reconcile.Request{NamespacedName: key}, w.retry)
			default:
				(*q).Add(reconcile.Request{NamespacedName: key})
			}
		}()
		out, err := c.StreamOutput(ctx, runID, agentletclient.OutputOptions{Follow: true})
		if err != nil {
			streamErr = err
			return
		}
		defer out.Close()
		_, streamErr = io.Copy(io.Discard, out)
	}()
}

// stop ends the watcher of run uid.
func (w *watchers) stop(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if entry, ok := w.active[uid]; ok {
		entry.cancel()
		delete(w.active, uid)
	}
}
