// Package app assembles exo-app: the one function, New, that cmd/exo-app's
// main and every test harness call, so a test runs exactly the server that
// ships. It opens the store, puts the live event hub in front of it, builds
// the dashboard API (pkg/platform/api) and mounts on it the events stream
// (pkg/platform/live), the operator tunnel (pkg/platform/agentkube, with its
// EXO_TUNNEL_* settings) and the browser shell (pkg/platform/shell, with its
// EXO_SHELL_* settings).
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/live"
	"github.com/exo-in-go/exo/pkg/platform/mail"
	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

// Options are what a caller may supply instead of the defaults. cmd/exo-app
// sets only Logger; the rest are hooks for test harnesses.
type Options struct {
	// Logger receives every component's logs (default: discarded).
	// NewLogger builds the one exo-app uses.
	Logger *slog.Logger
	// Store, when set, is used instead of opening EXO_DATABASE_DSN, and is
	// left open by Shutdown: a harness that restarts exo-app on the same
	// database keeps it across restarts.
	Store store.Store
	// Mailer replaces the SMTP sender built from the EXO_SMTP_* settings.
	Mailer mail.Sender
	// Shell holds shell settings that have no environment variable (time
	// outs, a clock); New fills in CastDir, BaseURL and the tunnels, takes
	// Retention from EXO_CAST_RETENTION unless it is set here, and applies
	// the EXO_SHELL_* variables over it.
	Shell shell.Options
}

// App is an assembled exo-app.
type App struct {
	cfg       *config.Config
	log       *slog.Logger
	store     store.Store
	ownStore  bool
	events    *live.Hub
	srv       *api.Server
	tunnels   *agentkube.Hub
	shell     *shell.Handler
	closeOnce sync.Once
}

// NewLogger is exo-app's logger: JSON lines on w at EXO_LOG_LEVEL, text in
// dev mode.
func NewLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	if cfg.DevMode {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
}

// New assembles exo-app from cfg (config.Load) and the other EXO_*
// variables read through getenv (EXO_TUNNEL_*, EXO_SHELL_*). Invalid
// variables are reported together, each with its name, before anything is
// opened. ctx bounds opening the store.
func New(ctx context.Context, cfg *config.Config, getenv func(string) string, opts Options) (*App, error) {
	tunnelOpts, tunnelErr := agentkube.OptionsFromEnv(getenv)
	shellBase := opts.Shell
	shellBase.CastDir, shellBase.BaseURL = cfg.CastStorageDir, cfg.BaseURL
	if shellBase.Retention == 0 {
		shellBase.Retention = cfg.CastRetention
	}
	shellOpts, shellErr := shell.OptionsFromEnv(getenv, shellBase)
	if err := errors.Join(tunnelErr, shellErr); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DevMode {
		log.Warn("EXO_DEV_MODE=true: development defaults for EXO_JWT_SECRET and EXO_ENCRYPTION_KEY may be in use; set EXO_DEV_MODE=false in production")
	}
	if err := os.MkdirAll(cfg.CastStorageDir, 0o750); err != nil {
		// The shell refuses to mount without it; say which setting is wrong first.
		log.Warn("EXO_CAST_STORAGE_DIR is not writable", "dir", cfg.CastStorageDir, "err", err)
	}

	a := &App{cfg: cfg, log: log}
	st := opts.Store
	if st == nil {
		openCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		var err error
		st, err = store.Open(openCtx, cfg.DatabaseDSN, log)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("EXO_DATABASE_DSN: %w", err)
		}
		a.ownStore = true
	}
	// Deployment changes written through the store (API, tunnel) are pushed
	// to browsers on GET /api/v1/events.
	a.events = live.NewHub(live.Options{})
	a.store = live.PublishingStore(st, a.events)
	fail := func(err error) (*App, error) {
		a.release()
		return nil, err
	}
	if opts.Mailer == nil {
		opts.Mailer = mail.New(cfg.SMTP, log)
	}
	var err error
	if a.srv, err = api.New(api.Options{Config: cfg, Store: a.store, Mailer: opts.Mailer, Logger: log}); err != nil {
		return fail(err)
	}
	a.srv.Handle("GET /api/v1/events", live.Handler(live.HandlerOptions{Hub: a.events, Auth: a.srv, Draining: a.srv.Draining(), Logger: log}))
	// The operator tunnel (/api/agentkube/connect) and its dashboard routes.
	tunnelOpts.Events = a.events
	if a.tunnels, err = agentkube.Mount(a.srv, tunnelOpts); err != nil {
		return fail(err)
	}
	tunnels := a.tunnels
	shellOpts.Tunnels = shell.TunnelsFunc(func(id string) (shell.Conn, bool) {
		// Never a typed nil in the interface.
		if c, ok := tunnels.Conn(id); ok {
			return c, true
		}
		return nil, false
	})
	if a.shell, err = shell.Mount(a.srv, shellOpts); err != nil {
		return fail(fmt.Errorf("shell: %w", err))
	}
	return a, nil
}

// ListenAndServe serves on EXO_PORT until Shutdown.
func (a *App) ListenAndServe() error {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(a.cfg.Port)))
	if err != nil {
		return fmt.Errorf("EXO_PORT: listen: %w", err)
	}
	return a.Serve(ln)
}

// Serve serves on ln until Shutdown (tests hand in a listener of their own).
func (a *App) Serve(ln net.Listener) error {
	a.log.Info("exo-app listening", "addr", ln.Addr().String(), "base_url", a.cfg.BaseURL.String(), "database", a.store.Dialect(), "cors", a.cfg.CORSEnabled)
	return a.srv.Serve(ln)
}

// Shutdown stops accepting connections and lets requests finish; long-lived
// connections (the tunnel, shells, event streams) are told to close and
// waited for, all bounded by ctx (api.Server.Shutdown). Then it releases
// the event hub and the store New opened. It may be called more than once.
func (a *App) Shutdown(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	ended := make(chan struct{})
	go func() { a.shell.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("shell sessions still open: %w", ctx.Err())
		}
	}
	a.release()
	return err
}

func (a *App) release() {
	a.closeOnce.Do(func() {
		a.events.Close()
		if a.ownStore {
			a.store.Close()
		}
	})
}

// Server is the API server the other components are mounted on.
func (a *App) Server() *api.Server { return a.srv }

// Store is the store every component uses: changes to deployments made
// through it are published to the event hub.
func (a *App) Store() store.Store { return a.store }

// Events is the live event hub behind GET /api/v1/events.
func (a *App) Events() *live.Hub { return a.events }

// Tunnels is the operator tunnel's hub (/api/agentkube/connect).
func (a *App) Tunnels() *agentkube.Hub { return a.tunnels }

// Shell is the browser shell's handler.
func (a *App) Shell() *shell.Handler { return a.shell }
