package agentkube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/auth"
	"github.com/exo-in-go/exo/pkg/platform/httpapi"
	"github.com/exo-in-go/exo/pkg/platform/live"
	"github.com/exo-in-go/exo/pkg/platform/perm"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// session is one accepted operator connection.
type session struct {
	hub         *Hub
	dep         *deployment
	conn        *tunnel.Conn
	remote      string
	tokenPrefix string
	// tokenHash is the SHA-256 of the token the connection authenticated
	// with (never the token): revalidateToken looks it up again to learn
	// whether the token was rotated or the deployment deleted since.
	tokenHash  string
	prevStatus string // the stored status when the connection was authenticated

	lastSeen atomic.Int64 // unix nanos of the last frame
	helloAt  time.Time    // set before the session becomes active, then read-only

	// Touched only by the reading goroutine (the tunnel.Handler).
	hello     bool
	clusterID string
	snapGen   uint64
	snap      *staged // the snapshot being received
	liveGen   uint64
	live      bool

	mu      sync.Mutex
	pending map[string]chan tunnel.Frame // request id → result
}

func (s *session) lastSeenTime() time.Time { return time.Unix(0, s.lastSeen.Load()) }

// serveConnect is GET /api/agentkube/connect. Everything that can be
// refused is refused with a plain HTTP status before the upgrade, so an
// operator (or nginx) sees 401/409 rather than a WebSocket that closes at once.
func (h *Hub) serveConnect(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" {
		// Browsers always send Origin on WebSockets; the operator never does.
		httpapi.WriteError(w, http.StatusForbidden, "forbidden", "the operator tunnel does not accept browser connections")
		return
	}
	tok, ok := bearer(r)
	if !ok || !auth.ValidDeploymentTokenFormat(tok) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="exo"`)
		httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized", "missing or malformed deployment token")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	d, err := h.srv.AuthenticateDeployment(ctx, tok)
	cancel()
	if errors.Is(err, store.ErrNotFound) {
		// Unknown, rotated or deleted token: the same answer for all three.
		w.Header().Set("WWW-Authenticate", `Bearer realm="exo"`)
		httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized", "invalid deployment token")
		return
	} else if err != nil {
		h.log.Error("authenticate deployment token", "err", err)
		httpapi.WriteError(w, http.StatusServiceUnavailable, "unavailable", "cannot verify the deployment token now")
		return
	}
	dep := h.deployment(d)
	if wait := h.graceRemaining(dep, time.Now()); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		httpapi.WriteError(w, http.StatusConflict, "already_connected", "another connection with this deployment token is active")
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	done := h.srv.TrackLongLived()
	defer done()

	s := &session{
		hub: h, dep: dep, remote: h.srv.ClientAddr(r), tokenPrefix: d.TokenPrefix, tokenHash: d.TokenHash, prevStatus: d.Status,
		conn: tunnel.NewConn(ws, tunnel.Options{
			ReadLimit: h.opts.MaxFrameBytes, PingInterval: h.opts.PingInterval,
		}),
		pending: map[string]chan tunnel.Frame{},
	}
	s.lastSeen.Store(time.Now().UnixNano())
	handshake := time.AfterFunc(h.opts.HandshakeTimeout, func() {
		s.conn.Close(tunnel.CloseHandshake, "no hello within the handshake timeout")
	})
	ctx, cancel = context.WithCancel(h.srv.Draining())
	defer cancel()
	err = s.conn.Run(ctx, func(f tunnel.Frame) { s.handle(ctx, f, handshake) })
	handshake.Stop()
	h.disconnected(s, err)
}

// graceRemaining is how long a new connection must wait because the
// active one is younger than the grace window.
func (h *Hub) graceRemaining(d *deployment, now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d.active == nil {
		return 0
	}
	return h.opts.GraceWindow - now.Sub(d.active.connectedAt())
}

func (s *session) connectedAt() time.Time { return s.helloAt }

func (s *session) handle(ctx context.Context, f tunnel.Frame, handshake *time.Timer) {
	s.lastSeen.Store(time.Now().UnixNano())
	if !s.hello {
		if f.Type != tunnel.TypeHello {
			s.conn.Close(tunnel.CloseProtocolError, "the first frame must be hello")
			return
		}
		handshake.Stop()
		s.onHello(ctx, f)
		return
	}
	switch f.Type {
	case tunnel.TypeHeartbeat:
		// lastSeen is all a heartbeat updates.
	case tunnel.TypeSnapshot:
		s.onSnapshot(f)
	case tunnel.TypeDelta:
		s.onDelta(f)
	case tunnel.TypeInvokeAgentResult, tunnel.TypeEnsurePodResult:
		s.mu.Lock()
		ch := s.pending[f.ID]
		delete(s.pending, f.ID)
		s.mu.Unlock()
		if ch != nil {
			ch <- f // buffered, one result per request
		}
	default:
		// Unknown types are ignored so operators can be newer than exo-app.
	}
}

// onHello binds the connection to its deployment: it becomes the active
// connection unless another one is still inside its grace window.
func (s *session) onHello(ctx context.Context, f tunnel.Frame) {
	h, d := s.hub, s.dep
	var hello tunnel.Hello
	if err := f.Unmarshal(&hello); err != nil {
		s.conn.Close(tunnel.CloseProtocolError, "invalid hello")
		return
	}
	now := time.Now()
	h.mu.Lock()
	old := d.active
	if old != nil && now.Sub(old.helloAt) < h.opts.GraceWindow {
		h.mu.Unlock()
		// Lost a race with a connection that claimed the slot after our
		// pre-upgrade check.
		s.conn.Close(tunnel.CloseDuplicate, "another connection with this deployment token is active")
		return
	}
	s.helloAt = now
	reconnect := d.everConnected || s.prevStatus != store.StatusPending
	d.active, d.everConnected = s, true
	h.mu.Unlock()
	d.view.claim(s)
	s.hello, s.clusterID = true, truncate(hello.ClusterID, 253)
	if old != nil {
		h.log.Info("operator connection superseded", "deployment", d.id, "remote", old.remote)
		old.conn.Close(tunnel.CloseSuperseded, "superseded by a newer connection")
	}
	if err := s.conn.Send(ctx, tunnel.TypeWelcome, f.ID, tunnel.Welcome{
		DeploymentID: d.id, HeartbeatIntervalSeconds: h.opts.HeartbeatInterval.Seconds(),
	}); err != nil {
		return
	}
	h.log.Info("operator connected", "deployment", d.id, "cluster_id", s.clusterID, "remote", s.remote,
		"operator_version", truncate(hello.OperatorVersion, 64), "reconnect", reconnect)
	h.reconcileStatus(d, now)
	if reconnect {
		h.auditReconnect(s)
	}
	// The token was checked before the upgrade; a rotation or deletion
	// committed since then found no active connection to close, so check
	// once more now that this one is active.
	h.revalidateToken(ctx, d)
}

func (h *Hub) auditReconnect(s *session) {
	detail, _ := json.Marshal(map[string]any{
		"cluster_id": s.clusterID, "previous_status": s.prevStatus, "token_prefix": s.tokenPrefix,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := h.store.AppendAudit(ctx, store.AuditEvent{
		TenantID: s.dep.tenantID, ActorID: "deployment:" + s.dep.id, Action: AuditDeploymentReconnected,
		TargetType: "deployment", TargetID: s.dep.id, Detail: string(detail), RemoteAddr: s.remote,
	})
	if err != nil {
		h.log.Error("write audit event", "action", AuditDeploymentReconnected, "deployment", s.dep.id, "err", err)
	}
}

// AuditDeploymentReconnected is the audit action recorded when a deployment
// that was connected before (to any exo-app) connects again.
const AuditDeploymentReconnected = "DeploymentReconnected"

func (s *session) onSnapshot(f tunnel.Frame) {
	var snap tunnel.Snapshot
	if err := f.Unmarshal(&snap); err != nil {
		s.conn.Close(tunnel.CloseProtocolError, "invalid snapshot")
		return
	}
	if s.snap == nil || snap.Generation != s.snapGen {
		s.snapGen, s.snap = snap.Generation, &staged{objects: make(map[tunnel.ObjectKey]tunnel.Object, len(snap.Objects))}
	}
	budget := s.hub.opts.MaxViewBytes
	for _, o := range snap.Objects {
		s.trim(&o)
		k := o.Key()
		size := objectBytes(o)
		if old, ok := s.snap.objects[k]; ok {
			size -= objectBytes(old)
		}
		// The snapshot being received is bounded like the view: an object
		// that does not fit is dropped, never buffered.
		if s.snap.bytes+size > budget {
			s.snap.refused++
			continue
		}
		s.snap.objects[k] = o
		s.snap.bytes += size
	}
	if len(s.snap.objects) > s.hub.opts.MaxObjects {
		s.conn.Close(tunnel.ClosePolicyViolation, "snapshot exceeds the object limit")
		return
	}
	if !snap.Final {
		return
	}
	snapshot := s.snap
	s.snap = nil
	if s.dep.view.replace(s, snapshot, s.clusterID, time.Now()) {
		s.liveGen, s.live = snap.Generation, true
		if snapshot.refused > 0 {
			s.overBudget(snapshot.bytes, snapshot.refused)
		}
		s.publishClusterChange(live.ClusterChange{Resync: true})
	}
}

// trim reduces o to what the dashboard shows, whatever the operator sent:
// an old or hostile operator must not make exo-app store env values, run
// inputs or large bodies. A body that is not a JSON object is dropped; the
// object stays listed by its key.
func (s *session) trim(o *tunnel.Object) {
	if err := tunnel.TrimObject(o); err != nil {
		o.Object = nil
	}
	o.Kind, o.Namespace, o.Name = truncate(o.Kind, 64), truncate(o.Namespace, 253), truncate(o.Name, 253)
	o.UID, o.ResourceVersion = truncate(o.UID, 64), truncate(o.ResourceVersion, 64)
}

// overBudget reports a refusal: to the operator (which logs it), in
// exo-app's log, and, through the view's state, on the dashboard.
func (s *session) overBudget(viewBytes int64, refused int) {
	budget := s.hub.opts.MaxViewBytes
	msg := fmt.Sprintf("view over budget: the cluster view of this deployment would exceed %d bytes (EXO_TUNNEL_MAX_VIEW_BYTES); %d objects were refused and are missing from the dashboard",
		budget, refused)
	s.hub.log.Warn("cluster view over budget", "deployment", s.dep.id, "budget_bytes", budget, "view_bytes", viewBytes, "refused_objects", refused)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.conn.Send(ctx, tunnel.TypeViewOverBudget, "", tunnel.ViewOverBudget{
		BudgetBytes: budget, ViewBytes: viewBytes, RefusedObjects: refused, Message: msg,
	})
}

func (s *session) onDelta(f tunnel.Frame) {
	var d tunnel.Delta
	if err := f.Unmarshal(&d); err != nil {
		s.conn.Close(tunnel.CloseProtocolError, "invalid delta")
		return
	}
	if !s.live || d.Generation != s.liveGen {
		return // a delta of a snapshot we never completed: the next snapshot covers it
	}
	for i := range d.Changes {
		s.trim(&d.Changes[i].Object)
	}
	res := s.dep.view.apply(s, d.Changes, s.hub.opts.MaxObjects, s.hub.opts.MaxViewBytes, time.Now())
	if res.tooMany {
		s.conn.Close(tunnel.ClosePolicyViolation, "view exceeds the object limit")
		return
	}
	if res.refused > 0 && !res.wasRefused {
		// Told once per episode, not per delta: a flooding operator must
		// not turn refusals into a flood of frames and log lines.
		s.overBudget(res.bytes, res.refused)
	}
	if res.owned && len(d.Changes) > 0 {
		kinds := map[string]bool{}
		var change live.ClusterChange
		for _, c := range d.Changes {
			if !kinds[c.Object.Kind] {
				kinds[c.Object.Kind] = true
				change.Kinds = append(change.Kinds, c.Object.Kind)
			}
		}
		s.publishClusterChange(change)
	}
}

// publishClusterChange tells browsers of the deployment's tenant that its view
// changed; Publish never blocks, so a slow browser cannot stall the tunnel.
func (s *session) publishClusterChange(change live.ClusterChange) {
	if s.hub.opts.Events == nil {
		return
	}
	change.DeploymentID = s.dep.id
	s.hub.opts.Events.Publish(live.Event{
		TenantID: s.dep.tenantID, DeploymentID: s.dep.id,
		Type: live.TypeCluster, Permission: perm.AgentsRead, Data: change,
	})
}

// disconnected releases the deployment if s still holds it (compare and
// delete: a superseded session must not evict its successor) and fails
// requests waiting on it.
func (h *Hub) disconnected(s *session, err error) {
	d := s.dep
	h.mu.Lock()
	wasActive := d.active == s
	if wasActive {
		d.active = nil
		d.lastSeen = s.lastSeenTime()
	}
	h.mu.Unlock()
	s.mu.Lock()
	for id, ch := range s.pending {
		close(ch)
		delete(s.pending, id)
	}
	s.mu.Unlock()
	if !s.hello {
		h.log.Info("operator connection closed before hello", "deployment", d.id, "remote", s.remote, "code", tunnel.CloseCode(err))
		return
	}
	h.log.Info("operator disconnected", "deployment", d.id, "cluster_id", s.clusterID, "code", tunnel.CloseCode(err), "err", err)
	select {
	case <-h.srv.Draining().Done():
		// exo-app is stopping; the operator reconnects to the next one, which
		// decides the status. Writing "degraded" now would only flap it.
		return
	default:
	}
	if wasActive {
		h.reconcileStatus(d, time.Now())
	}
}

func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
