package agentkube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/httpapi"
	"github.com/exo-in-go/exo/pkg/platform/perm"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

const (
	defaultInvokeTimeout = 5 * time.Minute
	maxInvokeTimeout     = time.Hour
	maxRequestBody       = 512 << 10
)

func (h *Hub) routes() {
	h.srv.Handle("GET /api/v1/deployments/{id}/cluster", h.authed(perm.DeploymentsRead, h.getCluster))
	h.srv.Handle("GET /api/v1/deployments/{id}/agents", h.authed(perm.AgentsRead, h.listAgents))
	h.srv.Handle("POST /api/v1/deployments/{id}/agents/{ns}/{name}/invoke", h.authed(perm.AgentsInvoke, h.invoke))
	h.srv.Handle("POST /api/v1/deployments/{id}/agents/{ns}/{name}/ensure-pod", h.authed(perm.AgentsInvoke, h.ensurePod))
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, p *api.Principal, d store.Deployment)

// authed authenticates like the dashboard API, checks permission and
// resolves {id} within the caller's tenant: another tenant's deployment is
// a 404, exactly like a missing one.
func (h *Hub) authed(permission string, next handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, status, msg := h.srv.Authenticate(r)
		if p == nil {
			httpapi.WriteAuthError(w, status, msg)
			return
		}
		if !p.Can(permission) {
			httpapi.WriteError(w, http.StatusForbidden, "forbidden", "missing permission "+permission)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		d, err := h.store.GetDeployment(ctx, p.TenantID, r.PathValue("id"))
		cancel()
		if errors.Is(err, store.ErrNotFound) {
			httpapi.WriteError(w, http.StatusNotFound, "not_found", "deployment not found")
			return
		} else if err != nil {
			h.log.ErrorContext(r.Context(), "load deployment", "err", err)
			httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
			return
		}
		next(w, r, p, d)
	})
}

// ClusterView is the body of GET /api/v1/deployments/{id}/cluster.
type ClusterView struct {
	DeploymentID string     `json:"deployment_id"`
	Status       string     `json:"status"`
	Connected    bool       `json:"connected"`
	ClusterID    string     `json:"cluster_id,omitempty"`
	LastSeenAt   *time.Time `json:"last_seen_at,omitempty"`
	Synced       bool       `json:"synced"`
	SyncedAt     *time.Time `json:"synced_at,omitempty"`
	UpdatedAt    *time.Time `json:"updated_at,omitempty"`
	// ViewBytes is what the view holds, against ViewBudgetBytes
	// (EXO_TUNNEL_MAX_VIEW_BYTES). OverBudget says the operator's view did
	// not fit and RefusedObjects of it are missing; Detail says so in words.
	ViewBytes       int64           `json:"view_bytes"`
	ViewBudgetBytes int64           `json:"view_budget_bytes"`
	OverBudget      bool            `json:"over_budget,omitempty"`
	RefusedObjects  int             `json:"refused_objects,omitempty"`
	Detail          string          `json:"detail,omitempty"`
	Objects         []tunnel.Object `json:"objects"`
}

func (h *Hub) clusterView(d store.Deployment, kind string) ClusterView {
	out := ClusterView{DeploymentID: d.ID, Status: d.Status, ViewBudgetBytes: h.opts.MaxViewBytes, Objects: []tunnel.Object{}}
	dep := h.lookup(d.ID)
	if dep == nil {
		return out
	}
	if st, ok := h.Status(d.ID); ok {
		out.Status = st
	}
	h.mu.Lock()
	active := dep.active
	last := dep.lastSeen
	h.mu.Unlock()
	if active != nil {
		out.Connected, last = true, active.lastSeenTime()
	}
	out.LastSeenAt = timePtr(last)
	v := dep.view.read(kind)
	out.ClusterID, out.Synced, out.Objects = v.ClusterID, v.Synced, v.Objects
	out.SyncedAt, out.UpdatedAt = timePtr(v.SyncedAt), timePtr(v.UpdatedAt)
	out.ViewBytes, out.OverBudget, out.RefusedObjects = v.Bytes, v.OverBudget, v.Refused
	if v.OverBudget {
		out.Detail = fmt.Sprintf("view over budget: %d objects of the operator's view were refused (budget %d bytes, EXO_TUNNEL_MAX_VIEW_BYTES); the view is incomplete", v.Refused, h.opts.MaxViewBytes)
	}
	return out
}

func (h *Hub) getCluster(w http.ResponseWriter, r *http.Request, _ *api.Principal, d store.Deployment) {
	httpapi.WriteJSON(w, http.StatusOK, h.clusterView(d, r.URL.Query().Get("kind")))
}

// AgentSummary is one item of GET /api/v1/deployments/{id}/agents.
type AgentSummary struct {
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Phase     string          `json:"phase,omitempty"`
	Runtime   string          `json:"runtime,omitempty"`
	Ready     string          `json:"ready,omitempty"`
	PodName   string          `json:"pod_name,omitempty"`
	PodPhase  string          `json:"pod_phase,omitempty"`
	Agent     json.RawMessage `json:"agent"`
}

func (h *Hub) listAgents(w http.ResponseWriter, r *http.Request, _ *api.Principal, d store.Deployment) {
	v := h.clusterView(d, "")
	pods := map[tunnel.ObjectKey]tunnel.Object{}
	for _, o := range v.Objects {
		if o.Kind == "Pod" {
			pods[o.Key()] = o
		}
	}
	items := []AgentSummary{}
	for _, o := range v.Objects {
		if o.Kind != "Agent" {
			continue
		}
		var a struct {
			Spec   struct{ Runtime string }
			Status struct{ Phase, Ready, PodName string }
		}
		_ = json.Unmarshal(o.Object, &a)
		s := AgentSummary{Namespace: o.Namespace, Name: o.Name, Phase: a.Status.Phase, Runtime: a.Spec.Runtime,
			Ready: a.Status.Ready, PodName: a.Status.PodName, Agent: o.Object}
		podName := s.PodName
		if podName == "" {
			podName = o.Name // an Agent runs as one pod named after it
		}
		if pod, ok := pods[tunnel.ObjectKey{Kind: "Pod", Namespace: o.Namespace, Name: podName}]; ok {
			var p struct{ Status struct{ Phase string } }
			_ = json.Unmarshal(pod.Object, &p)
			s.PodName, s.PodPhase = podName, p.Status.Phase
		}
		items = append(items, s)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"deployment_id": d.ID, "status": v.Status, "connected": v.Connected, "synced": v.Synced,
		"over_budget": v.OverBudget, "detail": v.Detail, "items": items,
	})
}

type invokeRequest struct {
	Input          string   `json:"input"`
	Args           []string `json:"args,omitempty"`
	TimeoutSeconds int      `json:"timeout_seconds,omitempty"`
}

func (h *Hub) invoke(w http.ResponseWriter, r *http.Request, p *api.Principal, d store.Deployment) {
	var req invokeRequest
	if !httpapi.DecodeJSONLimit(w, r, &req, maxRequestBody) {
		return
	}
	timeout, ok := requestTimeout(w, req.TimeoutSeconds)
	if !ok {
		return
	}
	ns, name := r.PathValue("ns"), r.PathValue("name")
	treq := tunnel.InvokeAgent{
		Namespace: ns, Name: name, Input: req.Input, Args: req.Args,
		TimeoutSeconds: int(timeout / time.Second), RequestedBy: p.Email,
	}
	if !acceptsNDJSON(r) {
		res, err := h.InvokeAgent(r.Context(), d.ID, treq)
		if !h.requestError(w, r, err, res.Error) {
			return
		}
		h.audit(r, p, d, "agent.invoke", ns+"/"+name, map[string]any{"run_name": res.RunName, "phase": res.Phase})
		httpapi.WriteJSON(w, http.StatusOK, res)
		return
	}
	// Streamed: NDJSON lines {"type":"output","output":…} as the agent
	// prints, then {"type":"result",…} or {"type":"error","error":…}. The
	// status line is sent with the first output, so a request refused
	// before the run starts still gets its proper HTTP status.
	nd := &ndjson{w: w}
	res, err := h.InvokeAgentStreaming(r.Context(), d.ID, treq, func(chunk string) error {
		return nd.line(map[string]string{"type": "output", "output": chunk})
	})
	if !nd.started {
		if !h.requestError(w, r, err, res.Error) {
			return
		}
	} else if status, code, msg := h.failure(r, err, res.Error); status != 0 {
		_ = nd.line(map[string]any{"type": "error", "error": map[string]string{"code": code, "message": msg}})
		return
	}
	h.audit(r, p, d, "agent.invoke", ns+"/"+name, map[string]any{"run_name": res.RunName, "phase": res.Phase})
	_ = nd.line(struct {
		Type string `json:"type"`
		tunnel.InvokeAgentResult
	}{"result", res})
}

// acceptsNDJSON says whether the client asked for a streamed answer.
func acceptsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "application/x-ndjson") {
				return true
			}
		}
	}
	return false
}

// ndjson writes one JSON value per line, flushing each so the client sees
// it at once. The first line sends the 200 status and headers.
type ndjson struct {
	w       http.ResponseWriter
	started bool
}

func (n *ndjson) line(v any) error {
	if !n.started {
		n.started = true
		hdr := n.w.Header()
		hdr.Set("Content-Type", "application/x-ndjson")
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("X-Accel-Buffering", "no") // nginx: pass lines through unbuffered
		n.w.WriteHeader(http.StatusOK)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := n.w.Write(append(b, '\n')); err != nil {
		return err
	}
	return http.NewResponseController(n.w).Flush()
}

func (h *Hub) ensurePod(w http.ResponseWriter, r *http.Request, p *api.Principal, d store.Deployment) {
	var req struct {
		TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	}
	if r.ContentLength != 0 && !httpapi.DecodeJSONLimit(w, r, &req, maxRequestBody) {
		return
	}
	timeout, ok := requestTimeout(w, req.TimeoutSeconds)
	if !ok {
		return
	}
	res, err := h.EnsurePod(r.Context(), d.ID, tunnel.EnsurePod{
		Namespace: r.PathValue("ns"), Name: r.PathValue("name"), TimeoutSeconds: int(timeout / time.Second),
	})
	if !h.requestError(w, r, err, res.Error) {
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

func requestTimeout(w http.ResponseWriter, seconds int) (time.Duration, bool) {
	if seconds == 0 {
		return defaultInvokeTimeout, true
	}
	t := time.Duration(seconds) * time.Second
	if seconds < 0 || t > maxInvokeTimeout {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_timeout", "timeout_seconds must be between 1 and 3600")
		return 0, false
	}
	return t, true
}

// requestError answers a failed request; it reports whether the request
// succeeded.
func (h *Hub) requestError(w http.ResponseWriter, r *http.Request, err error, res *tunnel.Error) bool {
	status, code, msg := h.failure(r, err, res)
	if status == 0 {
		return true
	}
	httpapi.WriteError(w, status, code, msg)
	return false
}

// failure maps a failed request to an HTTP status, an error code and a
// message; status 0 when it succeeded.
func (h *Hub) failure(r *http.Request, err error, res *tunnel.Error) (status int, code, msg string) {
	switch {
	case errors.Is(err, ErrOperatorOffline):
		return http.StatusServiceUnavailable, "operator_offline", err.Error()
	case errors.Is(err, ErrRequestTimeout):
		return http.StatusGatewayTimeout, "timeout", err.Error()
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; the run it started goes on in the cluster.
		return http.StatusServiceUnavailable, "canceled", "the request was canceled"
	case err != nil:
		h.log.ErrorContext(r.Context(), "operator request", "err", err)
		return http.StatusBadGateway, "operator_error", "the operator request failed"
	case res != nil:
		status := map[string]int{
			tunnel.CodeNotFound: http.StatusNotFound, tunnel.CodeInvalid: http.StatusBadRequest,
			tunnel.CodeTimeout: http.StatusGatewayTimeout, tunnel.CodeUnavailable: http.StatusServiceUnavailable,
		}[res.Code]
		if status == 0 {
			status = http.StatusBadGateway
		}
		return status, res.Code, res.Message
	}
	return 0, "", ""
}

func (h *Hub) audit(r *http.Request, p *api.Principal, d store.Deployment, action, target string, detail map[string]any) {
	detail["deployment_id"] = d.ID
	b, _ := json.Marshal(detail)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := h.store.AppendAudit(ctx, store.AuditEvent{
		TenantID: p.TenantID, ActorID: p.UserID, ActorEmail: p.Email, Action: action,
		TargetType: "agent", TargetID: target, Detail: string(b), RemoteAddr: h.srv.ClientAddr(r),
	}); err != nil {
		h.log.ErrorContext(r.Context(), "write audit event", "action", action, "err", err)
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
