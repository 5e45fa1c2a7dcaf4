// Command exo-app is the Exo platform: the dashboard API, the embedded UI and
// (mounted by later packages) the operator and shell WebSockets, on one plain
// HTTP port. TLS is the ingress's job.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/live"
	"github.com/exo-in-go/exo/pkg/platform/mail"
	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "exo-app:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	tunnelOpts, err := agentkube.OptionsFromEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	var handler slog.Handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	if cfg.DevMode {
		handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	}
	log := slog.New(handler)
	slog.SetDefault(log)
	if cfg.DevMode {
		log.Warn("EXO_DEV_MODE=true: development defaults for EXO_JWT_SECRET and EXO_ENCRYPTION_KEY may be in use; set EXO_DEV_MODE=false in production")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(cfg.CastStorageDir, 0o750); err != nil {
		// Recordings are written by a later component; warn now rather than fail the API.
		log.Warn("EXO_CAST_STORAGE_DIR is not writable", "dir", cfg.CastStorageDir, "err", err)
	}

	openCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	st, err := store.Open(openCtx, cfg.DatabaseDSN, log)
	cancel()
	if err != nil {
		return fmt.Errorf("EXO_DATABASE_DSN: %w", err)
	}
	defer st.Close()

	// Deployment changes written through the store (API, tunnel) are pushed
	// to browsers on GET /api/v1/events.
	events := live.NewHub(live.Options{})
	defer events.Close()
	srv, err := api.New(api.Options{Config: cfg, Store: live.PublishingStore(st, events), Mailer: mail.New(cfg.SMTP, log), Logger: log})
	if err != nil {
		return err
	}
	srv.Handle("GET /api/v1/events", live.Handler(live.HandlerOptions{Hub: events, Auth: srv, Draining: srv.Draining(), Logger: log}))
	// The operator tunnel (/api/agentkube/connect) and its dashboard routes.
	tunnelOpts.Events = events
	tunnels, err := agentkube.Mount(srv, tunnelOpts)
	if err != nil {
		return err
	}
	shellOpts, err := shell.OptionsFromEnv(os.Getenv, shell.Options{
		CastDir:   cfg.CastStorageDir,
		Retention: cfg.CastRetention,
		BaseURL:   cfg.BaseURL,
		Tunnels: shell.TunnelsFunc(func(id string) (shell.Conn, bool) {
			if c, ok := tunnels.Conn(id); ok {
				return c, true
			}
			return nil, false
		}),
	})
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if _, err := shell.Mount(srv, shellOpts); err != nil {
		return fmt.Errorf("shell: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("EXO_PORT: listen: %w", err)
	}
	log.Info("exo-app listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL.String(), "database", st.Dialect(), "cors", cfg.CORSEnabled)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Kubernetes gives 30 s by default between SIGTERM and SIGKILL.
	shCtx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return <-errc
}
