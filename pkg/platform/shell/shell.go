// Package shell is exo-app's browser shell: a user with agents:invoke asks
// for a short-lived single-use grant, the browser redeems it by opening a
// WebSocket on exo-app's own port, and the session is relayed over the
// deployment's operator tunnel (pkg/tunnel) to the operator, which opens a
// PTY in the agent's pod (pkg/shellexec). Every session is recorded as
// asciicast v2 under EXO_CAST_STORAGE_DIR, listed in the API and audited.
//
// docs/shell.md describes the API, the browser protocol and the decisions.
package shell

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/httpapi"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// Conn is the part of a *tunnel.Conn the shell uses: one operator
// connection.
type Conn interface {
	OpenStream(id uint32) (*tunnel.Stream, error)
	Send(ctx context.Context, typ, id string, payload any) error
	Done() <-chan struct{}
}

// Tunnels finds the operator connection of a deployment.
type Tunnels interface {
	// Conn returns the deployment's active operator connection, or false
	// when its operator is not connected to this exo-app.
	Conn(deploymentID string) (Conn, bool)
}

// TunnelsFunc adapts a function to Tunnels.
type TunnelsFunc func(deploymentID string) (Conn, bool)

// Conn implements Tunnels.
func (f TunnelsFunc) Conn(deploymentID string) (Conn, bool) { return f(deploymentID) }

// Options configure the shell endpoints. Zero values take the defaults.
type Options struct {
	// Tunnels reaches operators; required.
	Tunnels Tunnels
	// CastDir is where recordings go (EXO_CAST_STORAGE_DIR); required.
	CastDir string
	// BaseURL is EXO_BASE_URL: the only Origin allowed to open a shell
	// WebSocket, and the base of the ws_url returned with a grant; required.
	BaseURL *url.URL
	// GrantTTL is how long a grant may wait for its WebSocket (default 60s).
	GrantTTL time.Duration
	// MaxGrants bounds outstanding grants of all tenants together
	// (EXO_SHELL_MAX_GRANTS, default 10000). Past it: 503 with Retry-After.
	MaxGrants int
	// MaxGrantsPerTenant bounds one tenant's outstanding grants
	// (EXO_SHELL_MAX_GRANTS_PER_TENANT, default 200): well below MaxGrants,
	// so one tenant cannot spend the global pool. Past it: 429.
	MaxGrantsPerTenant int
	// MaxGrantsPerUser bounds one user's outstanding grants
	// (EXO_SHELL_MAX_GRANTS_PER_USER, default 20). Past it: 429.
	MaxGrantsPerUser int
	// ReauthInterval is how often an open shell is re-authorised as its
	// user (EXO_SHELL_REAUTH_INTERVAL, default 5s): removal from the tenant,
	// a role without agents:invoke, an expired or revoked token end it with
	// reason "revoked".
	ReauthInterval time.Duration
	// OpenTimeout bounds the wait for the operator to start the shell
	// (default 30s): it covers the pod lookup and the exec handshake.
	OpenTimeout time.Duration
	// CloseTimeout bounds the wait for the operator's final shell_close once
	// the browser left (default 5s); the stream is reset after it.
	CloseTimeout time.Duration
	// BrowserWriteTimeout drops a browser that accepts no output for this
	// long (default 30s). Until then its shell (only its shell) waits.
	BrowserWriteTimeout time.Duration
	// PingInterval is the WebSocket ping cadence to the browser (default
	// 25s, under common proxies' 60s idle timeout).
	PingInterval time.Duration
	// MaxRecordingBytes caps one recording (default 64 MiB); past it a
	// marker notes the truncation and the session goes on unrecorded.
	MaxRecordingBytes int64
	// Retention removes a recording this long after its session ended, and
	// the recordings of deleted tenants (EXO_CAST_RETENTION); 0 keeps them.
	Retention time.Duration
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// OptionsFromEnv reads the EXO_SHELL_* variables into o (the limits of
// grants and the re-authorisation interval); unset variables leave o's
// fields as they are. Every invalid value is reported with its name.
func OptionsFromEnv(getenv func(string) string, o Options) (Options, error) {
	var errs []error
	num := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s: must be a positive integer, got %q", name, v))
				return
			}
			*dst = n
		}
	}
	num("EXO_SHELL_MAX_GRANTS", &o.MaxGrants)
	num("EXO_SHELL_MAX_GRANTS_PER_TENANT", &o.MaxGrantsPerTenant)
	num("EXO_SHELL_MAX_GRANTS_PER_USER", &o.MaxGrantsPerUser)
	if v := getenv("EXO_SHELL_REAUTH_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("EXO_SHELL_REAUTH_INTERVAL: must be a positive Go duration such as 5s, got %q", v))
		} else {
			o.ReauthInterval = d
		}
	}
	return o, errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.GrantTTL, 60*time.Second)
	def(&o.OpenTimeout, 30*time.Second)
	def(&o.CloseTimeout, 5*time.Second)
	def(&o.BrowserWriteTimeout, 30*time.Second)
	def(&o.PingInterval, 25*time.Second)
	def(&o.ReauthInterval, 5*time.Second)
	if o.MaxGrants <= 0 {
		o.MaxGrants = 10_000
	}
	if o.MaxGrantsPerTenant <= 0 {
		o.MaxGrantsPerTenant = 200
	}
	if o.MaxGrantsPerUser <= 0 {
		o.MaxGrantsPerUser = 20
	}
	if o.MaxRecordingBytes <= 0 {
		o.MaxRecordingBytes = 64 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Handler serves the shell endpoints.
type Handler struct {
	srv      *api.Server
	store    store.Store
	log      *slog.Logger
	opts     Options
	origin   string
	grants   *grants
	upgrader websocket.Upgrader

	nextStream atomic.Uint32

	mu     sync.Mutex
	active map[string]*relay // session id → relay
	wg     sync.WaitGroup    // running relays
}

// Subprotocol is the WebSocket subprotocol of the browser shell.
const Subprotocol = "exo-shell.v1"

// Mount registers the shell routes on srv:
//
//	POST /api/v1/deployments/{id}/agents/{ns}/{name}/shell   agents:invoke → grant
//	GET  /api/v1/shell/{grant_id}                            WebSocket (the grant is the credential)
//	GET  /api/v1/sessions                                    audit:read
//	GET  /api/v1/sessions/{id}                               audit:read
//	GET  /api/v1/sessions/{id}/recording                     audit:read
//	GET  /api/v1/shell-settings                              tenant:read
//	PUT  /api/v1/shell-settings                              tenant:write
func Mount(srv *api.Server, opts Options) (*Handler, error) {
	opts = opts.withDefaults()
	if opts.Tunnels == nil || opts.CastDir == "" || opts.BaseURL == nil {
		return nil, errors.New("shell: Tunnels, CastDir and BaseURL are required")
	}
	if err := os.MkdirAll(opts.CastDir, 0o750); err != nil {
		return nil, fmt.Errorf("shell: EXO_CAST_STORAGE_DIR: %w", err)
	}
	h := &Handler{
		srv:    srv,
		store:  srv.Store(),
		log:    srv.Logger().With("component", "shell"),
		opts:   opts,
		origin: opts.BaseURL.Scheme + "://" + opts.BaseURL.Host,
		grants: newGrants(grantLimits{PerUser: opts.MaxGrantsPerUser, PerTenant: opts.MaxGrantsPerTenant, Global: opts.MaxGrants}, opts.Now),
		active: map[string]*relay{},
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferSize:  32 << 10,
		Subprotocols:     []string{Subprotocol},
		// serveShell checks the Origin itself, before the grant is touched,
		// so it can answer 403 with the API's error body.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	// Platform-initiated tunnel streams use even ids (operator-initiated
	// ones would use odd ids), so the two sides never pick the same id.
	h.nextStream.Store(0)
	h.routes()

	if opts.Retention > 0 {
		h.startRetention()
	}
	srv.Every(opts.ReauthInterval, h.reauthorizeAll)
	srv.Every(opts.GrantTTL, func(context.Context) { h.grants.sweep() })
	return h, nil
}

func (h *Handler) routes() {
	authed := func(permission string, fn func(http.ResponseWriter, *http.Request, *api.Principal)) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			defer cancel()
			r = r.WithContext(ctx)
			p, status, msg := h.srv.Authenticate(r)
			if p == nil {
				httpapi.WriteAuthError(w, status, msg)
				return
			}
			if !p.Can(permission) {
				httpapi.WriteError(w, http.StatusForbidden, "forbidden", "missing permission "+permission)
				return
			}
			fn(w, r, p)
		})
	}
	h.srv.Handle("POST /api/v1/deployments/{id}/agents/{ns}/{name}/shell", authed(permInvoke, h.createGrant))
	h.srv.Handle("GET /api/v1/shell/{grant}", http.HandlerFunc(h.serveShell))
	h.srv.Handle("GET /api/v1/sessions", authed(permAuditRead, h.listSessions))
	h.srv.Handle("GET /api/v1/sessions/{id}", authed(permAuditRead, h.getSession))
	h.srv.Handle("GET /api/v1/sessions/{id}/recording", authed(permAuditRead, h.downloadRecording))
	h.srv.Handle("GET /api/v1/shell-settings", authed(permTenantRead, h.getSettings))
	h.srv.Handle("PUT /api/v1/shell-settings", authed(permTenantWrite, h.putSettings))
}

// Active is the number of running shell sessions.
func (h *Handler) Active() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.active)
}

// Wait blocks until every session has ended; sessions end when exo-app
// drains (api.Server.Draining).
func (h *Handler) Wait() { h.wg.Wait() }

// streamID picks the next even stream id that is free on conn.
func (h *Handler) openStream(conn Conn) (*tunnel.Stream, error) {
	var lastErr error
	for range 16 {
		id := h.nextStream.Add(2)
		if id == 0 {
			continue
		}
		s, err := conn.OpenStream(id)
		if err == nil {
			return s, nil
		}
		lastErr = err // taken by a long-lived stream after a wrap-around
	}
	return nil, fmt.Errorf("no free tunnel stream id: %w", lastErr)
}
