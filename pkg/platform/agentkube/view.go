package agentkube

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/exo-in-go/exo/pkg/tunnel"
)

// view is the latest picture of one deployment's cluster: the last complete
// snapshot plus the deltas applied since. Only the session that owns it (the
// deployment's active connection) may change it, so frames still in flight
// on a superseded connection can never overwrite a newer snapshot.
type view struct {
	mu        sync.RWMutex
	owner     *session
	objects   map[tunnel.ObjectKey]tunnel.Object
	clusterID string
	synced    bool
	syncedAt  time.Time // last complete snapshot
	updatedAt time.Time // last snapshot or delta
}

func (v *view) claim(s *session) {
	v.mu.Lock()
	v.owner = s
	v.mu.Unlock()
}

// replace installs a complete snapshot.
func (v *view) replace(s *session, objects map[tunnel.ObjectKey]tunnel.Object, clusterID string, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.owner != s {
		return false
	}
	v.objects, v.clusterID, v.synced, v.syncedAt, v.updatedAt = objects, clusterID, true, now, now
	return true
}

// apply applies a delta; it reports false when s no longer owns the view or
// the change would exceed maxObjects.
func (v *view) apply(s *session, changes []tunnel.Change, maxObjects int, now time.Time) (owned, fits bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.owner != s || !v.synced {
		return false, true
	}
	for _, c := range changes {
		k := c.Object.Key()
		switch c.Op {
		case tunnel.OpUpsert:
			if _, ok := v.objects[k]; !ok && len(v.objects) >= maxObjects {
				return true, false
			}
			v.objects[k] = c.Object
		case tunnel.OpDelete:
			delete(v.objects, k)
		}
	}
	v.updatedAt = now
	return true, true
}

// viewSnapshot is a consistent copy for the dashboard.
type viewSnapshot struct {
	ClusterID string
	Synced    bool
	SyncedAt  time.Time
	UpdatedAt time.Time
	Objects   []tunnel.Object // sorted by kind, namespace, name
}

func (v *view) read(kind string) viewSnapshot {
	v.mu.RLock()
	out := viewSnapshot{ClusterID: v.clusterID, Synced: v.synced, SyncedAt: v.syncedAt, UpdatedAt: v.updatedAt}
	out.Objects = make([]tunnel.Object, 0, len(v.objects))
	for _, o := range v.objects {
		if kind == "" || o.Kind == kind {
			out.Objects = append(out.Objects, o)
		}
	}
	v.mu.RUnlock()
	slices.SortFunc(out.Objects, func(a, b tunnel.Object) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}
