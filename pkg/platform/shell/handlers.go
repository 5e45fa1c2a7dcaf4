package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/httpapi"
	"github.com/exo-in-go/exo/pkg/platform/perm"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

// maxRequestBody bounds the JSON bodies of the shell endpoints (a grant's
// terminal size, the settings): far more than they need.
const maxRequestBody = 64 << 10

const (
	permInvoke      = perm.AgentsInvoke
	permAuditRead   = perm.AuditRead
	permTenantRead  = perm.TenantRead
	permTenantWrite = perm.TenantWrite
)

// Audit actions.
const (
	AuditShellOpened          = "ShellSessionOpened"
	AuditShellClosed          = "ShellSessionClosed"
	AuditShellSettingsUpdated = "ShellSettingsUpdated"
)

// GrantRequest is the optional body of the grant request: the terminal's
// initial size, so the recording's header and the PTY start right.
type GrantRequest struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// GrantResponse is the answer to a grant request.
type GrantResponse struct {
	GrantID   string    `json:"grant_id"`
	WSURL     string    `json:"ws_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (h *Handler) createGrant(w http.ResponseWriter, r *http.Request, p *api.Principal) {
	depID, ns, name := r.PathValue("id"), r.PathValue("ns"), r.PathValue("name")
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid", "namespace: "+strings.Join(errs, "; "))
		return
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid", "agent name: "+strings.Join(errs, "; "))
		return
	}
	var req GrantRequest
	if r.ContentLength != 0 {
		if !httpapi.DecodeJSONLimit(w, r, &req, maxRequestBody) {
			return
		}
	}
	if req.Cols == 0 || req.Rows == 0 {
		req.Cols, req.Rows = 80, 24
	}
	if req.Cols > 1000 || req.Rows > 1000 {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid", "cols and rows must be at most 1000")
		return
	}
	// The deployment must be the caller's tenant's: the store's tenant
	// scoping answers 404 for another tenant's id, as for an unknown one.
	if _, err := h.store.GetDeployment(r.Context(), p.TenantID, depID); errors.Is(err, store.ErrNotFound) {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", "deployment not found")
		return
	} else if err != nil {
		h.log.ErrorContext(r.Context(), "load deployment", "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
		return
	}
	if _, ok := h.opts.Tunnels.Conn(depID); !ok {
		httpapi.WriteError(w, http.StatusConflict, "not_connected", "the deployment's operator is not connected")
		return
	}
	expires := h.opts.Now().Add(h.opts.GrantTTL)
	id, err := h.grants.issue(grant{
		TenantID: p.TenantID, UserID: p.UserID, UserEmail: p.Email,
		Token:        bearerToken(r),
		DeploymentID: depID, Namespace: ns, Agent: name,
		Cols: req.Cols, Rows: req.Rows, ExpiresAt: expires,
	})
	var lim *limitError
	if errors.As(err, &lim) {
		retry := int(math.Ceil(lim.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		h.log.WarnContext(r.Context(), "shell grant refused", "scope", lim.Scope, "limit", lim.Limit,
			"tenant", p.TenantID, "user", p.UserID, "retry_after_s", retry)
		switch lim.Scope {
		case "user":
			httpapi.WriteError(w, http.StatusTooManyRequests, "too_many_requests", fmt.Sprintf(
				"you have %d shell grants that were not used yet (the limit per user); open the shells you asked for or retry in %d s", lim.Limit, retry))
		case "tenant":
			httpapi.WriteError(w, http.StatusTooManyRequests, "too_many_requests", fmt.Sprintf(
				"this tenant has %d shell grants that were not used yet (the limit per tenant); retry in %d s", lim.Limit, retry))
		default:
			httpapi.WriteError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf(
				"too many shells are being opened on this server; retry in %d s", retry))
		}
		return
	} else if err != nil {
		h.log.ErrorContext(r.Context(), "issue shell grant", "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
		return
	}
	ws := *h.opts.BaseURL
	ws.Scheme = map[string]string{"https": "wss", "http": "ws"}[ws.Scheme]
	ws.Path = strings.TrimRight(ws.Path, "/") + "/api/v1/shell/" + id
	httpapi.WriteJSON(w, http.StatusCreated, GrantResponse{GrantID: id, WSURL: ws.String(), ExpiresAt: expires.UTC()})
}

// authProtocolPrefix carries the caller's JWT in Sec-WebSocket-Protocol,
// the one header a browser WebSocket can set (kube-apiserver's
// base64url.bearer.authorization.k8s.io does the same). The grant alone is
// never enough: a leaked grant id is useless without its owner's token.
const authProtocolPrefix = "exo-auth."

// serveShell is GET /api/v1/shell/{grant}. Every refusal is a plain HTTP
// answer before the upgrade. Order matters: the Origin is checked before
// the grant is touched, so a cross-site page cannot even burn a grant;
// from then on the grant is spent whatever happens.
func (h *Handler) serveShell(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != h.origin {
		h.log.WarnContext(r.Context(), "shell WebSocket refused: foreign origin", "origin", truncate(origin, 200), "remote", r.RemoteAddr)
		httpapi.WriteError(w, http.StatusForbidden, "forbidden", "cross-origin shell connections are not allowed")
		return
	}
	g, err := h.grants.redeem(r.PathValue("grant"))
	if err != nil {
		h.log.WarnContext(r.Context(), "shell WebSocket refused", "reason", err.Error(), "remote", r.RemoteAddr)
		httpapi.WriteError(w, http.StatusForbidden, "invalid_grant", "the shell grant is invalid, expired or already used")
		return
	}
	token := ""
	for _, proto := range websocket.Subprotocols(r) {
		if t, ok := strings.CutPrefix(proto, authProtocolPrefix); ok {
			token = t
		}
	}
	if token == "" {
		httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized", "the "+authProtocolPrefix+"<token> subprotocol is required")
		return
	}
	// Re-authenticate as of now, in the grant's tenant: a member removed or
	// demoted since the grant was issued does not get the shell, and a
	// token of another user or tenant never redeems someone else's grant.
	p, status, msg := h.srv.AuthenticateToken(r.Context(), token, g.TenantID)
	if p == nil {
		httpapi.WriteError(w, status, httpapi.CodeFor(status), msg)
		return
	}
	if p.UserID != g.UserID || p.TenantID != g.TenantID {
		httpapi.WriteError(w, http.StatusForbidden, "invalid_grant", "the shell grant was issued to someone else")
		return
	}
	if !p.Can(permInvoke) {
		httpapi.WriteError(w, http.StatusForbidden, "forbidden", "missing permission "+permInvoke)
		return
	}
	if g.Token == "" {
		g.Token = token
	}
	conn, ok := h.opts.Tunnels.Conn(g.DeploymentID)
	if !ok {
		httpapi.WriteError(w, http.StatusConflict, "not_connected", "the deployment's operator is not connected")
		return
	}
	settings, err := h.store.GetShellSettings(r.Context(), g.TenantID)
	if err != nil {
		h.log.ErrorContext(r.Context(), "load shell settings", "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
		return
	}
	// Only our own subprotocol is echoed; the token one never is.
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	done := h.srv.TrackLongLived()
	defer done()
	h.wg.Add(1)
	defer h.wg.Done()
	h.runSession(ws, conn, g, settings, h.srv.ClientAddr(r))
}

func (h *Handler) listSessions(w http.ResponseWriter, r *http.Request, p *api.Principal) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	out, err := h.store.ListShellSessions(r.Context(), p.TenantID, store.Page{Before: q.Get("before"), Limit: limit})
	if err != nil {
		h.log.ErrorContext(r.Context(), "list shell sessions", "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
		return
	}
	items := make([]sessionView, len(out))
	for i, s := range out {
		items[i] = h.view(s)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (h *Handler) getSession(w http.ResponseWriter, r *http.Request, p *api.Principal) {
	s, ok := h.loadSession(w, r, p)
	if ok {
		httpapi.WriteJSON(w, http.StatusOK, h.view(s))
	}
}

// sessionView adds what the dashboard shows: the duration, and whether the
// session is still running.
type sessionView struct {
	store.ShellSession
	DurationSeconds float64 `json:"duration_seconds"`
	Active          bool    `json:"active"`
	RecordingURL    string  `json:"recording_url"`
}

func (h *Handler) view(s store.ShellSession) sessionView {
	end := h.opts.Now()
	if s.EndedAt != nil {
		end = *s.EndedAt
	}
	return sessionView{
		ShellSession:    s,
		DurationSeconds: max(0, end.Sub(s.StartedAt).Seconds()),
		Active:          s.EndedAt == nil,
		RecordingURL:    "/api/v1/sessions/" + s.ID + "/recording",
	}
}

func (h *Handler) loadSession(w http.ResponseWriter, r *http.Request, p *api.Principal) (store.ShellSession, bool) {
	s, err := h.store.GetShellSession(r.Context(), p.TenantID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", "session not found")
		return s, false
	} else if err != nil {
		h.log.ErrorContext(r.Context(), "load shell session", "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
		return s, false
	}
	return s, true
}

// downloadRecording streams the .cast file. A running session's recording
// is served as far as it is written.
func (h *Handler) downloadRecording(w http.ResponseWriter, r *http.Request, p *api.Principal) {
	s, ok := h.loadSession(w, r, p)
	if !ok {
		return
	}
	if !s.RecordingAvailable {
		httpapi.WriteError(w, http.StatusGone, "recording_expired", "the recording was removed after the retention period (EXO_CAST_RETENTION)")
		return
	}
	f, err := os.Open(filepath.Join(h.opts.CastDir, filepath.FromSlash(s.Recording)))
	if errors.Is(err, os.ErrNotExist) {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", "the recording is no longer stored")
		return
	} else if err != nil {
		h.log.ErrorContext(r.Context(), "open recording", "session", s.ID, "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
		return
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Content-Type", "application/x-asciicast")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": s.ID + ".cast"}))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		h.log.DebugContext(r.Context(), "send recording", "session", s.ID, "err", err)
	}
}

func (h *Handler) getSettings(w http.ResponseWriter, r *http.Request, p *api.Principal) {
	st, err := h.store.GetShellSettings(r.Context(), p.TenantID)
	if err != nil {
		h.log.ErrorContext(r.Context(), "load shell settings", "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
}

func (h *Handler) putSettings(w http.ResponseWriter, r *http.Request, p *api.Principal) {
	var req struct {
		RecordInput *bool `json:"record_input"`
	}
	if !httpapi.DecodeJSONLimit(w, r, &req, maxRequestBody) {
		return
	}
	if req.RecordInput == nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid", "record_input is required")
		return
	}
	ctx := audited(r.Context(), store.AuditEvent{
		TenantID: p.TenantID, ActorID: p.UserID, ActorEmail: p.Email, Action: AuditShellSettingsUpdated,
		TargetType: "tenant", TargetID: p.TenantID, RemoteAddr: h.srv.ClientAddr(r),
	}, map[string]any{"record_input": *req.RecordInput})
	st, err := h.store.SetShellSettings(ctx, p.TenantID, store.ShellSettings{RecordInput: *req.RecordInput})
	if err != nil {
		h.log.ErrorContext(r.Context(), "save shell settings", "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
}

// audited returns ctx carrying e with detail, for the store to record in
// the transaction of the change made under it (see store.WithAudit).
func audited(ctx context.Context, e store.AuditEvent, detail map[string]any) context.Context {
	if b, err := json.Marshal(detail); err == nil {
		e.Detail = string(b)
	}
	return store.WithAudit(ctx, e)
}

// ---- small HTTP helpers ----

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// bearerToken is the request's bearer token ("" without one; the request
// was authenticated before this is called).
func bearerToken(r *http.Request) string {
	tok, _ := api.BearerToken(r)
	return tok
}
