// Command exo-app is the Exo platform: the dashboard API, the embedded UI,
// the live event stream and the operator and shell WebSockets, on one plain
// HTTP port. TLS is the ingress's job. The server is assembled by
// pkg/platform/app, which the test harnesses call too.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/app"
	"github.com/exo-in-go/exo/pkg/platform/config"
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
	log := app.NewLogger(cfg, os.Stderr)
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	a, err := app.New(ctx, cfg, os.Getenv, app.Options{Logger: log})
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- a.ListenAndServe() }()

	select {
	case err := <-errc: // EXO_PORT could not be served
		shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(shCtx)
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Kubernetes gives 30 s by default between SIGTERM and SIGKILL.
	shCtx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := a.Shutdown(shCtx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return <-errc
}
