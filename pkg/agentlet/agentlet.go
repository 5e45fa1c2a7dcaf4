// Package agentlet assembles the agent pod's sidecar: the run manager, the
// attach handler and the authenticated HTTP API, with a clean shutdown.
package agentlet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/exo-in-go/exo/pkg/agentlet/adapter"
	"github.com/exo-in-go/exo/pkg/agentlet/attach"
	"github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/run"
	"github.com/exo-in-go/exo/pkg/agentlet/server"
)

// Agentlet is a configured, not yet serving agentlet.
type Agentlet struct {
	cfg     config.Config
	log     *slog.Logger
	runs    *run.Manager
	attach  *attach.Handler
	handler http.Handler
	// certs serves the TLS pair when one is configured; the agentlet then
	// speaks nothing but TLS.
	certs *certReloader
}

// New validates cfg and prepares the data directory.
func New(cfg config.Config, log *slog.Logger) (*Agentlet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	runs, err := run.NewManager(cfg, log)
	if err != nil {
		return nil, err
	}
	env, err := attachEnv(cfg)
	if err != nil {
		return nil, fmt.Errorf("prepare the runtime's environment: %w", err)
	}
	attachHandler, err := attach.NewHandler(attach.Options{
		Command:           adapter.AttachCommand(cfg.Runtime, cfg.AttachCommand),
		Env:               env,
		WorkDir:           cfg.WorkDir,
		RecordingDir:      filepath.Join(cfg.DataDir, "sessions"),
		RecordInput:       cfg.RecordInput,
		MaxRecordingBytes: cfg.MaxRecordingBytes,
		MaxSessions:       cfg.MaxAttachSessions,
		PingPeriod:        cfg.AttachPingPeriod,
		KillGracePeriod:   cfg.KillGracePeriod,
		Log:               log,
	})
	if err != nil {
		return nil, err
	}
	srv, err := server.New(runs, attachHandler, cfg.Token, cfg.MaxInputBytes, log)
	if err != nil {
		return nil, err
	}
	a := &Agentlet{cfg: cfg, log: log, runs: runs, attach: attachHandler, handler: srv.Handler()}
	if cfg.TLSCertFile != "" {
		if a.certs, err = newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, log); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Serve answers on ln until ctx ends, then shuts down: it refuses new work,
// cancels the active run and ends attach sessions (their processes get the
// kill grace period), and closes the listener.
func (a *Agentlet) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		// No WriteTimeout: output and attach streams last as long as runs.
	}
	if a.certs != nil {
		// HTTP/1.1 over TLS 1.3 only; a plain HTTP request on this listener gets
		// no API (Go answers it with a bare 400 and closes).
		srv.TLSConfig = a.certs.tlsConfig()
	}
	served := make(chan error, 1)
	go func() {
		var err error
		if a.certs != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		served <- err
	}()
	a.log.Info("Agentlet serving", "address", ln.Addr().String(), "runtime", a.cfg.Runtime, "tls", a.certs != nil)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("Agentlet shutting down")
	return a.Shutdown(srv, served)
}

// Shutdown stops work first, so streaming responses (which end with their
// run) let the HTTP server drain.
func (a *Agentlet) Shutdown(srv *http.Server, served <-chan error) error {
	stopCtx, cancel := context.WithTimeout(context.Background(), a.cfg.KillGracePeriod+10*time.Second)
	defer cancel()
	errs := []error{
		a.runs.Shutdown(stopCtx),
		a.attach.Shutdown(stopCtx),
		srv.Shutdown(stopCtx),
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ListenAndServe listens on the configured address and calls Serve.
func (a *Agentlet) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.ListenAddress, err)
	}
	return a.Serve(ctx, ln)
}

// attachEnv is the environment a run's CLI gets (model endpoint, offline
// settings, HOME with the CLI's configuration files; run.RuntimeEnv), so a CLI
// opened in a terminal talks to the same model, plus TERM, which a PTY session
// needs and a pod usually lacks; a TERM set in the pod wins.
func attachEnv(cfg config.Config) ([]string, error) {
	env, err := run.RuntimeEnv(cfg)
	if err != nil {
		return nil, err
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "TERM=") {
			return env, nil
		}
	}
	return append(env, "TERM=xterm-256color"), nil
}
