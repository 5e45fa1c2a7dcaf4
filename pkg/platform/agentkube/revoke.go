package agentkube

import (
	"context"
	"errors"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/live"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// Closing connections whose token is no longer valid.
//
// A connection is authenticated once, before the upgrade. Rotating the
// deployment's token or deleting the deployment must end it at once: until
// then it keeps receiving users' invocations and shells. The hub does not
// rely on the API handler telling it (that would only work on the replica
// that served the API call). Instead the connection itself is re-validated:
// its token hash is looked up again in the store, exactly as at connect.
// Two things trigger that look-up:
//
//   - the store change event of the rotation or deletion (live.Observable,
//     published by the live package's publishing store after the commit), which makes it
//     immediate on the replica that made the change, and would on every
//     replica once events are shared between replicas;
//   - a periodic re-check of every active connection
//     (EXO_TUNNEL_TOKEN_RECHECK_INTERVAL), which bounds the delay on
//     replicas that did not see the event, and after a missed one.
//
// docs/tunnel.md ("Revocation") describes the guarantee.

// observeStore subscribes to deployment changes when the publisher offers
// it; it returns the unsubscribe function (a no-op otherwise).
func (h *Hub) observeStore() (stop func()) {
	obs, ok := h.opts.Events.(live.Observable)
	if !ok {
		return func() {}
	}
	return obs.Observe(func(e live.Event) {
		if e.Type != live.TypeDeployment {
			return
		}
		ds, ok := e.Data.(live.DeploymentStatus)
		if !ok || (ds.Change != live.ChangeTokenRotated && ds.Change != live.ChangeDeleted) {
			return
		}
		d := h.lookup(e.DeploymentID)
		if d == nil {
			return // never connected here
		}
		// Observers must not block the publisher (an API handler): the
		// look-up runs on its own goroutine, tracked so shutdown waits for it.
		done := h.srv.TrackLongLived()
		go func() {
			defer done()
			h.revalidateToken(h.srv.Draining(), d)
		}()
	})
}

// revalidateToken closes d's active connection when its token no longer
// authenticates: 4003, after which the operator's reconnect is refused
// with 401. A deleted deployment is also forgotten (its view freed). A
// store error leaves the connection alone; the next check decides.
func (h *Hub) revalidateToken(ctx context.Context, d *deployment) {
	h.mu.Lock()
	s := d.active
	h.mu.Unlock()
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := h.store.GetDeploymentByTokenHash(ctx, s.tokenHash)
	if err == nil && got.ID == d.id {
		return // still valid
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.log.Warn("re-check deployment token", "deployment", d.id, "err", err)
		return
	}
	_, err = h.store.GetDeployment(ctx, d.tenantID, d.id)
	deleted := errors.Is(err, store.ErrNotFound)
	if err != nil && !deleted {
		h.log.Warn("re-check deployment", "deployment", d.id, "err", err)
	}
	if deleted {
		h.log.Info("closing operator connection: deployment deleted", "deployment", d.id, "token_prefix", s.tokenPrefix)
		h.forget(d)
		return
	}
	h.log.Info("closing operator connection: deployment token rotated", "deployment", d.id, "token_prefix", s.tokenPrefix)
	s.conn.Close(tunnel.CloseTokenRevoked, "deployment token rotated")
}

// revalidateAll re-checks every active connection's token.
func (h *Hub) revalidateAll(ctx context.Context) {
	h.mu.Lock()
	deps := make([]*deployment, 0, len(h.deployments))
	for _, d := range h.deployments {
		if d.active != nil {
			deps = append(deps, d)
		}
	}
	h.mu.Unlock()
	for _, d := range deps {
		if ctx.Err() != nil {
			return
		}
		h.revalidateToken(ctx, d)
	}
}
