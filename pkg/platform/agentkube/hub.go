// Package agentkube is exo-app's side of the operator tunnel: the
// GET /api/agentkube/connect WebSocket that agentkube-manager dials in
// managed mode, the per-deployment cluster view it feeds, deployment
// liveness (pending → connected → degraded → offline), requests to the
// operator (invoke_agent, ensure_pod) and the dashboard routes over all of
// it. The wire protocol is pkg/tunnel; docs/tunnel.md describes both.
//
// The view lives in memory: on every connect the operator sends a full
// snapshot, so a restarted exo-app is complete again as soon as its
// operators have reconnected.
package agentkube

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// Hub holds every deployment's connection state and view.
type Hub struct {
	srv      *api.Server
	store    store.Store
	log      *slog.Logger
	opts     Options
	upgrader websocket.Upgrader

	mu          sync.Mutex
	deployments map[string]*deployment

	// nextOutputStream allocates invoke output streams: odd ids, so they
	// never meet the shells' even ones on the same connection.
	nextOutputStream atomic.Uint32
}

// deployment is the hub's state for one deployment.
type deployment struct {
	id, tenantID string
	view         view

	// Guarded by Hub.mu.
	active        *session
	everConnected bool
	lastSeen      time.Time // last frame of a previous session

	// statusMu serialises status decisions and store writes per deployment
	// so that a slow write can never land after a newer one.
	statusMu sync.Mutex
	status   string // last status written to the store
}

// Mount registers the tunnel endpoint and its dashboard routes on srv and
// starts the liveness monitor, which ends when srv shuts down.
func Mount(srv *api.Server, opts Options) (*Hub, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	h := &Hub{
		srv:   srv,
		store: srv.Store(),
		log:   srv.Logger().With("component", "agentkube-tunnel"),
		opts:  opts,
		upgrader: websocket.Upgrader{
			HandshakeTimeout: opts.HandshakeTimeout,
			// Small buffers and a shared write pool keep an idle connection
			// at a few KiB: exo-app holds one per deployment.
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
			WriteBufferPool: &sync.Pool{},
			// Requests with an Origin header are refused before the upgrade
			// (serveConnect); operators are not browsers.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		deployments: map[string]*deployment{},
	}
	srv.Handle("GET /api/agentkube/connect", http.HandlerFunc(h.serveConnect))
	h.routes()
	stopObserving := h.observeStore()
	done := srv.TrackLongLived()
	go func() {
		defer done()
		defer stopObserving()
		h.monitor(srv.Draining().Done())
	}()
	srv.Every(opts.TokenRecheckInterval, h.revalidateAll)
	return h, nil
}

func (h *Hub) deployment(d store.Deployment) *deployment {
	h.mu.Lock()
	defer h.mu.Unlock()
	dep := h.deployments[d.ID]
	if dep == nil {
		dep = &deployment{id: d.ID, tenantID: d.TenantID, status: d.Status}
		h.deployments[d.ID] = dep
	}
	return dep
}

// Conn returns the active operator connection of a deployment, or false when its
// operator is not connected to this exo-app. Browser shells open their streams on it.
func (h *Hub) Conn(deploymentID string) (*tunnel.Conn, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.deployments[deploymentID]
	if d == nil || d.active == nil {
		return nil, false
	}
	return d.active.conn, true
}

func (h *Hub) lookup(id string) *deployment {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deployments[id]
}

// monitor re-evaluates liveness on a tick well below the windows, so a
// status changes within a quarter window of its deadline.
func (h *Hub) monitor(stop <-chan struct{}) {
	tick := min(h.opts.DegradedAfter, h.opts.OfflineAfter-h.opts.DegradedAfter) / 4
	tick = max(tick, 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			h.mu.Lock()
			deps := make([]*deployment, 0, len(h.deployments))
			for _, d := range h.deployments {
				if d.everConnected {
					deps = append(deps, d)
				}
			}
			h.mu.Unlock()
			for _, d := range deps {
				h.reconcileStatus(d, now)
			}
		}
	}
}

// desiredStatus derives the status from the last frame seen: any frame
// counts, heartbeats guarantee one per interval.
func (h *Hub) desiredStatus(d *deployment, now time.Time) (status string, lastSeen time.Time) {
	h.mu.Lock()
	active, ever := d.active, d.everConnected
	lastSeen = d.lastSeen
	h.mu.Unlock()
	if !ever {
		return d.status, time.Time{}
	}
	if active != nil {
		lastSeen = active.lastSeenTime()
	}
	age := now.Sub(lastSeen)
	switch {
	case age >= h.opts.OfflineAfter:
		return store.StatusOffline, lastSeen
	case active == nil || age >= h.opts.DegradedAfter:
		return store.StatusDegraded, lastSeen
	default:
		return store.StatusConnected, lastSeen
	}
}

// reconcileStatus writes the deployment's status when it changed.
func (h *Hub) reconcileStatus(d *deployment, now time.Time) {
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	want, lastSeen := h.desiredStatus(d, now)
	if want == d.status {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := h.store.SetDeploymentStatus(ctx, d.tenantID, d.id, want, lastSeen)
	if err != nil {
		h.log.Warn("record deployment status", "deployment", d.id, "status", want, "err", err)
		if errors.Is(err, store.ErrNotFound) {
			h.forget(d)
		}
		return
	}
	h.log.Info("deployment status", "deployment", d.id, "from", d.status, "to", want)
	d.status = want
	if want == store.StatusOffline {
		// The eviction window has passed: free the view. Under h.mu, so a
		// connection that becomes active meanwhile claims the view after
		// this and installs its own snapshot.
		h.mu.Lock()
		if d.active == nil {
			d.view.release()
		}
		h.mu.Unlock()
	}
}

// forget drops a deleted deployment and closes its connection.
func (h *Hub) forget(d *deployment) {
	h.mu.Lock()
	active := d.active
	if h.deployments[d.id] == d {
		delete(h.deployments, d.id)
	}
	d.everConnected = false
	d.view.release()
	h.mu.Unlock()
	if active != nil {
		active.conn.Close(tunnel.CloseTokenRevoked, "deployment deleted")
	}
}

// Status is the live status of a deployment as this exo-app sees it, and
// whether it knows the deployment at all.
func (h *Hub) Status(deploymentID string) (string, bool) {
	d := h.lookup(deploymentID)
	if d == nil {
		return "", false
	}
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	return d.status, true
}
