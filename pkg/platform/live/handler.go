package live

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/httpapi"
	"github.com/exo-in-go/exo/pkg/platform/perm"
)

// Authenticator resolves a request's caller; *api.Server implements it.
type Authenticator interface {
	Authenticate(r *http.Request) (*api.Principal, int, string)
}

// HandlerOptions wire the events endpoint.
type HandlerOptions struct {
	Hub  *Hub
	Auth Authenticator
	// Draining is cancelled when the server shuts down; open streams end so
	// http.Server.Shutdown is not held up by them (api.Server.Draining).
	Draining context.Context
	Logger   *slog.Logger
	// KeepAlive is the interval of comment lines that keep proxies from
	// timing the stream out (default 15 s, under common 30-60 s idle timeouts).
	KeepAlive time.Duration
	// Reauthenticate is how often the caller's token and membership are
	// checked again, so an expired JWT or a removed member stops receiving
	// (default 30 s).
	Reauthenticate time.Duration
	// WriteTimeout bounds each write so a client that stopped reading cannot
	// hold the handler (default 10 s).
	WriteTimeout time.Duration
}

// Handler serves GET /api/v1/events: a text/event-stream of the caller's
// tenant. The caller authenticates like any API call, with the
// Authorization header (the browser uses fetch with a streamed body, not
// EventSource, so the JWT never appears in a URL). ?deployment=ID narrows
// cluster events to one deployment. A reconnecting client sends the last id
// it saw in Last-Event-ID (or ?last_event_id=).
//
// The first event is always "hello" with {"resumed":bool}; when resumed is
// false the client must reload its state through the REST API, because
// events may have been missed.
func Handler(o HandlerOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Draining == nil {
		o.Draining = context.Background()
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	if o.Reauthenticate <= 0 {
		o.Reauthenticate = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { o.serve(w, r) })
}

func (o *HandlerOptions) serve(w http.ResponseWriter, r *http.Request) {
	p, status, msg := o.Auth.Authenticate(r)
	if p == nil {
		httpapi.WriteAuthError(w, status, msg)
		return
	}
	if !p.Can(perm.DeploymentsRead) {
		httpapi.WriteError(w, http.StatusForbidden, "forbidden", "missing permission "+perm.DeploymentsRead)
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	sub := o.Hub.Subscribe(Filter{
		TenantID:     p.TenantID,
		DeploymentID: r.URL.Query().Get("deployment"),
		Permissions:  p.Permissions,
	}, last)
	defer sub.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 8<<10)
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(o.WriteTimeout))
		if bw.Flush() != nil {
			return false
		}
		return rc.Flush() == nil
	}

	// retry: how long EventSource-compatible clients wait before reconnecting.
	bw.WriteString("retry: 2000\n")
	hello, _ := json.Marshal(map[string]any{"resumed": sub.Resumed(), "tenant_id": p.TenantID})
	writeEvent(bw, "", "hello", hello)
	for _, rec := range sub.replay {
		writeEvent(bw, o.Hub.id(rec.seq), rec.typ, rec.data)
	}
	sub.replay = nil
	if !flush() {
		return
	}

	keepAlive := time.NewTicker(o.KeepAlive)
	defer keepAlive.Stop()
	reauth := time.NewTicker(o.Reauthenticate)
	defer reauth.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-o.Draining.Done():
			// Tell the client to come back (to another replica) rather than treat it as an error.
			writeEvent(bw, "", "reconnect", []byte(`{"reason":"server shutting down"}`))
			flush()
			return
		case <-sub.Done():
			if sub.Overflowed() {
				o.Logger.DebugContext(r.Context(), "live stream fell behind; closing so the client resumes", "tenant", p.TenantID)
			}
			return
		case rec := <-sub.ch:
			writeEvent(bw, o.Hub.id(rec.seq), rec.typ, rec.data)
			// Drain what is already queued into the same flush.
			for more := true; more; {
				select {
				case rec := <-sub.ch:
					writeEvent(bw, o.Hub.id(rec.seq), rec.typ, rec.data)
				default:
					more = false
				}
			}
			if !flush() {
				return
			}
		case <-keepAlive.C:
			bw.WriteString(": keep-alive\n\n")
			if !flush() {
				return
			}
		case <-reauth.C:
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			again, _, _ := o.Auth.Authenticate(r.WithContext(ctx))
			cancel()
			if again == nil || !again.Can(perm.DeploymentsRead) {
				writeEvent(bw, "", "unauthorized", []byte(`{}`))
				flush()
				return
			}
		}
	}
}

// writeEvent writes one SSE event. data is compact JSON (no newlines), so it
// is a single data: line.
func writeEvent(w *bufio.Writer, id, typ string, data []byte) {
	if id != "" {
		w.WriteString("id: ")
		w.WriteString(id)
		w.WriteByte('\n')
	}
	w.WriteString("event: ")
	w.WriteString(typ)
	w.WriteString("\ndata: ")
	w.Write(data)
	w.WriteString("\n\n")
}
