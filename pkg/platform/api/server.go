// Package api is exo-app's HTTP surface: the dashboard API under /api/v1,
// /api/health, and the embedded UI at /. Handlers are small functions over
// store.Store; cross-cutting behaviour (CORS, body limits, deadlines,
// recovery, access logs) lives in middleware.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/exo-in-go/exo/pkg/platform/auth"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/crypto"
	"github.com/exo-in-go/exo/pkg/platform/httpapi"
	"github.com/exo-in-go/exo/pkg/platform/mail"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/platform/ui"
)

// Options wires a Server.
type Options struct {
	Config *config.Config
	Store  store.Store
	Mailer mail.Sender
	Logger *slog.Logger
	// HTTPClient is used for outbound calls in dev mode; it must have a timeout.
	HTTPClient *http.Client
	// OIDCClient, when set, replaces the client identity providers are
	// reached with (by default one that refuses internal addresses outside
	// dev mode).
	OIDCClient *http.Client
}

// Server is the exo-app HTTP server. Other packages (the operator tunnel, the
// browser shell) mount their handlers with Handle and watch Draining to close
// long-lived connections on shutdown.
type Server struct {
	cfg     *config.Config
	store   store.Store
	mailer  mail.Sender
	log     *slog.Logger
	box     *crypto.Box
	jwt     *auth.Issuer
	client  *http.Client
	mux     *http.ServeMux
	handler http.Handler

	loginByAddr  *auth.RateLimiter
	loginBackoff *auth.Backoff
	authByAddr   *auth.RateLimiter
	hasher       *auth.Hasher
	mailSlots    chan struct{}
	oidc         *oidcProviders
	// oidcClient reaches identity providers; outside dev mode it refuses,
	// at dial time, addresses inside the cluster or the cloud (SSRF).
	oidcClient *http.Client
	members    membershipCache

	draining   context.Context
	stopDrain  context.CancelFunc
	longLived  sync.WaitGroup
	httpServer *http.Server
}

// New builds the server and its routes.
func New(opts Options) (*Server, error) {
	if opts.Config == nil || opts.Store == nil {
		return nil, errors.New("api: Config and Store are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Mailer == nil {
		opts.Mailer = mail.New(opts.Config.SMTP, opts.Logger)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	box, err := crypto.NewBox(opts.Config.EncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("api: EXO_ENCRYPTION_KEY: %w", err)
	}
	s := &Server{
		cfg:    opts.Config,
		store:  opts.Store,
		mailer: opts.Mailer,
		log:    opts.Logger,
		box:    box,
		jwt:    auth.NewIssuer(opts.Config.JWTSecret, opts.Config.JWTExpiry),
		client: opts.HTTPClient,
		mux:    http.NewServeMux(),
		// Per client address the limit is generous: many users can sit behind one NAT or ingress.
		loginByAddr: auth.NewRateLimiter(opts.Config.LoginRatePerMinute*10, opts.Config.LoginRatePerMinute*10),
		// Per address and account: LoginRatePerMinute failures are free,
		// then each one doubles a lock from 2 s up to 15 min.
		loginBackoff: auth.NewBackoff(opts.Config.LoginRatePerMinute, 2*time.Second, 15*time.Minute),
		authByAddr:   auth.NewRateLimiter(opts.Config.AuthRatePerMinute, opts.Config.AuthRatePerMinute),
		// A caller waits up to 2 s for a slot, holding a goroutine, not 19 MiB.
		hasher:     auth.NewHasher(opts.Config.PasswordHashConcurrency, 2*time.Second),
		mailSlots:  make(chan struct{}, 64),
		oidc:       newOIDCProviders(),
		oidcClient: opts.HTTPClient,
	}
	if opts.OIDCClient != nil {
		s.oidcClient = opts.OIDCClient
	} else if !opts.Config.DevMode {
		s.oidcClient = guardedClient(opts.Config.OIDCAllowedNetworks)
	}
	s.draining, s.stopDrain = context.WithCancel(context.Background())
	s.routes()
	// Expired single-use rows go in the background, so the requests that
	// create them never scan for old ones.
	s.Every(time.Minute, s.sweepExpired)
	s.handler = s.recoverer(s.accessLog(s.cors(s.limitBody(s.mux))))
	// Built here, not in Serve, so Shutdown never races with Serve.
	s.httpServer = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// No server-wide Read/WriteTimeout: they would cut WebSockets. JSON
		// API routes get per-request deadlines in apiDeadline instead.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.Background() },
	}
	s.httpServer.RegisterOnShutdown(s.stopDrain)
	return s, nil
}

// Handler returns the complete handler chain (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Handle mounts an extra handler, such as a WebSocket endpoint, on the same
// mux (Go 1.22 patterns, e.g. "GET /api/agentkube/connect"). It gets CORS,
// recovery and access logging but not the JSON API's per-request deadlines,
// so it may hijack the connection and live for hours.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Draining returns a context that is cancelled when graceful shutdown
// starts. Long-lived handlers select on it to send a close frame and return.
func (s *Server) Draining() context.Context { return s.draining }

// TrackLongLived registers a long-lived (typically hijacked) connection.
// Shutdown waits, up to its deadline, for every returned done func to be
// called: http.Server.Shutdown does not wait for hijacked connections itself.
func (s *Server) TrackLongLived() (done func()) {
	s.longLived.Add(1)
	var once sync.Once
	return func() { once.Do(s.longLived.Done) }
}

// Store exposes the store to packages that mount handlers (the tunnel sets
// deployment status through it).
func (s *Server) Store() store.Store { return s.store }

// Logger is the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.httpServer.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, lets in-flight requests finish,
// tells long-lived handlers to close (Draining) and waits for them, all
// bounded by ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopDrain()
	var err error
	if s.httpServer != nil {
		err = s.httpServer.Shutdown(ctx)
	}
	waited := make(chan struct{})
	go func() { s.longLived.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("long-lived connections still open: %w", ctx.Err())
		}
	}
	return err
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /api/health", s.health)
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", "no such API endpoint")
	})
	uiHandler := ui.Handler()
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpapi.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
			return
		}
		uiHandler.ServeHTTP(w, r)
	})

	api := func(pattern string, h http.HandlerFunc) { m.Handle(pattern, s.apiDeadline(h)) }

	api("POST /api/v1/auth/signup", s.signup)
	api("POST /api/v1/auth/signup/confirm", s.confirmSignup)
	api("POST /api/v1/auth/login", s.login)
	api("POST /api/v1/auth/logout", s.authed("", s.logout))
	api("POST /api/v1/auth/password", s.authed("", s.changePassword))
	api("GET /api/v1/auth/me", s.authed("", s.me))
	api("POST /api/v1/auth/invitations/accept", s.acceptInvitation)
	api("POST /api/v1/auth/password-reset", s.requestPasswordReset)
	api("POST /api/v1/auth/password-reset/confirm", s.confirmPasswordReset)
	api("GET /api/v1/auth/oidc/{tenant_id}/{idp_id}/login", s.oidcLogin)
	api("GET /api/v1/auth/oidc/callback", s.oidcCallback)
	api("POST /api/v1/auth/oidc/complete", s.oidcComplete)

	api("GET /api/v1/permissions", s.authed("", s.listPermissions))
	api("GET /api/v1/tenants", s.authed("", s.listTenants))
	api("POST /api/v1/tenants", s.authed("", s.createTenant))
	api("GET /api/v1/tenant", s.authed(permTenantRead, s.getTenant))
	api("PATCH /api/v1/tenant", s.authed(permTenantWrite, s.updateTenant))

	api("GET /api/v1/users", s.authed(permUsersRead, s.listUsers))
	api("PATCH /api/v1/users/{id}", s.authed(permUsersWrite, s.updateUser))
	api("DELETE /api/v1/users/{id}", s.authed(permUsersWrite, s.removeUser))
	api("GET /api/v1/invitations", s.authed(permUsersRead, s.listInvitations))
	api("POST /api/v1/invitations", s.authed(permUsersInvite, s.createInvitation))
	api("DELETE /api/v1/invitations/{id}", s.authed(permUsersInvite, s.deleteInvitation))

	api("GET /api/v1/roles", s.authed(permRolesRead, s.listRoles))
	api("POST /api/v1/roles", s.authed(permRolesWrite, s.createRole))
	api("GET /api/v1/roles/{id}", s.authed(permRolesRead, s.getRole))
	api("PUT /api/v1/roles/{id}", s.authed(permRolesWrite, s.updateRole))
	api("DELETE /api/v1/roles/{id}", s.authed(permRolesWrite, s.deleteRole))

	api("GET /api/v1/deployments", s.authed(permDeploymentsRead, s.listDeployments))
	api("POST /api/v1/deployments", s.authed(permDeploymentsWrite, s.createDeployment))
	api("GET /api/v1/deployments/{id}", s.authed(permDeploymentsRead, s.getDeployment))
	api("DELETE /api/v1/deployments/{id}", s.authed(permDeploymentsDelete, s.deleteDeployment))
	api("POST /api/v1/deployments/{id}/rotate", s.authed(permDeploymentsWrite, s.rotateDeployment))

	api("GET /api/v1/audit", s.authed(permAuditRead, s.listAudit))

	api("GET /api/v1/idp", s.authed(permIdPRead, s.listIdPs))
	api("POST /api/v1/idp", s.authed(permIdPWrite, s.createIdP))
	api("GET /api/v1/idp/{id}", s.authed(permIdPRead, s.getIdP))
	api("DELETE /api/v1/idp/{id}", s.authed(permIdPWrite, s.deleteIdP))
	// Any member links their own account to an identity of the tenant's provider.
	api("POST /api/v1/idp/{id}/link", s.authed("", s.linkIdP))

	// Lets an operator (or exo CLI) check a deployment token without opening the tunnel.
	api("GET /api/agentkube/whoami", s.deploymentWhoami)
}

// Every runs fn at once and then every interval until graceful shutdown
// starts, as a long-lived task Shutdown waits for; fn gets the draining
// context. The periodic work of every mounted package runs through it.
func (s *Server) Every(interval time.Duration, fn func(ctx context.Context)) {
	done := s.TrackLongLived()
	go func() {
		defer done()
		wait.UntilWithContext(s.draining, fn, interval)
	}()
}

// sweepExpired deletes expired single-use rows.
func (s *Server) sweepExpired(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.store.SweepExpired(sctx, time.Now()); err != nil && ctx.Err() == nil {
		s.log.WarnContext(sctx, "sweep expired rows", "err", err)
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "health check: store unavailable", "err", err)
		httpapi.WriteError(w, http.StatusServiceUnavailable, "unavailable", "database unavailable")
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "database": s.store.Dialect()})
}
