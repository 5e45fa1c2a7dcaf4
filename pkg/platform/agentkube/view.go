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
//
// Its size is bounded in bytes (Options.MaxViewBytes), not only in objects:
// objects are stored trimmed (tunnel.Trim) and counted with objectBytes;
// growth past the budget is refused and the view marked over budget
// instead of growing.
type view struct {
	mu        sync.RWMutex
	owner     *session
	objects   map[tunnel.ObjectKey]tunnel.Object
	bytes     int64 // sum of objectBytes over objects
	clusterID string
	synced    bool
	syncedAt  time.Time // last complete snapshot
	updatedAt time.Time // last snapshot or delta

	// overBudget is set when a snapshot or delta did not fit; refused counts
	// the objects dropped since. The next snapshot that fits clears both.
	overBudget bool
	refused    int
}

// objectOverhead approximates what one stored object costs besides its
// bytes (map entry, key strings, slice headers), so that a flood of tiny
// objects is bounded by the byte budget too.
const objectOverhead = 256

func objectBytes(o tunnel.Object) int64 {
	return int64(len(o.Object)+len(o.Kind)+2*len(o.Namespace)+2*len(o.Name)+len(o.UID)+len(o.ResourceVersion)) + objectOverhead
}

func (v *view) claim(s *session) {
	v.mu.Lock()
	v.owner = s
	v.mu.Unlock()
}

// release frees the objects of a view nobody owns any more (the operator
// has been offline for the eviction window); the next connection sends a
// full snapshot anyway.
func (v *view) release() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.owner, v.objects, v.bytes, v.synced = nil, nil, 0, false
	v.overBudget, v.refused = false, 0
}

// staged is a snapshot being received: its objects and their bytes.
type staged struct {
	objects map[tunnel.ObjectKey]tunnel.Object
	bytes   int64
	refused int
}

// replace installs a complete snapshot.
func (v *view) replace(s *session, snap *staged, clusterID string, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.owner != s {
		return false
	}
	v.objects, v.bytes, v.clusterID, v.synced, v.syncedAt, v.updatedAt = snap.objects, snap.bytes, clusterID, true, now, now
	v.overBudget, v.refused = snap.refused > 0, snap.refused
	return true
}

// applyResult says what apply did.
type applyResult struct {
	owned      bool // s owns the view and the changes were considered
	tooMany    bool // an upsert would exceed maxObjects (nothing after it applied)
	refused    int  // upserts dropped because they did not fit the byte budget
	wasRefused bool // the view was already over budget before this delta
	bytes      int64
}

// apply applies a delta. Upserts that would take the view past budget
// bytes are dropped (the view is then over budget); deletes always apply.
func (v *view) apply(s *session, changes []tunnel.Change, maxObjects int, budget int64, now time.Time) applyResult {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.owner != s || !v.synced {
		return applyResult{}
	}
	res := applyResult{owned: true, wasRefused: v.overBudget}
	for _, c := range changes {
		k := c.Object.Key()
		old, had := v.objects[k]
		switch c.Op {
		case tunnel.OpUpsert:
			if !had && len(v.objects) >= maxObjects {
				res.tooMany = true
				return res
			}
			grow := objectBytes(c.Object)
			if had {
				grow -= objectBytes(old)
			}
			if v.bytes+grow > budget {
				res.refused++
				continue
			}
			v.objects[k] = c.Object
			v.bytes += grow
		case tunnel.OpDelete:
			if had {
				delete(v.objects, k)
				v.bytes -= objectBytes(old)
			}
		}
	}
	if res.refused > 0 {
		v.overBudget = true
		v.refused += res.refused
	}
	res.bytes = v.bytes
	v.updatedAt = now
	return res
}

// viewSnapshot is a consistent copy for the dashboard.
type viewSnapshot struct {
	ClusterID  string
	Synced     bool
	SyncedAt   time.Time
	UpdatedAt  time.Time
	Bytes      int64
	OverBudget bool
	Refused    int
	Objects    []tunnel.Object // sorted by kind, namespace, name
}

func (v *view) read(kind string) viewSnapshot {
	v.mu.RLock()
	out := viewSnapshot{ClusterID: v.clusterID, Synced: v.synced, SyncedAt: v.syncedAt, UpdatedAt: v.updatedAt,
		Bytes: v.bytes, OverBudget: v.overBudget, Refused: v.refused}
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
