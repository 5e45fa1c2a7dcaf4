// Command agentlet runs inside every Agent pod. It drives the agent's
// runtime CLI for each run, serves the manager an authenticated API for
// runs, output, recordings and attach, and records every session as
// asciicast v2. Configuration comes from AGENTLET_* environment variables
// (see docs/agentlet.md); a few flags override them for local use.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/exo-in-go/exo/pkg/agentlet"
	"github.com/exo-in-go/exo/pkg/agentlet/config"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "agentlet:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := config.FromEnv(os.LookupEnv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("agentlet", flag.ContinueOnError)
	fs.StringVar(&cfg.ListenAddress, "listen-address", cfg.ListenAddress, "address to serve the API on ("+config.EnvListenAddress+")")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for output and recordings ("+config.EnvDataDir+")")
	tokenFile := fs.String("token-file", "", "file holding the bearer token ("+config.EnvTokenFile+")")
	runtime := fs.String("runtime", string(cfg.Runtime), "agent runtime ("+config.EnvRuntime+")")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error ("+config.EnvLogLevel+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Runtime = config.Runtime(*runtime)
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("read token file: %w", err)
		}
		cfg.Token = strings.TrimSpace(string(b))
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("%s: %w", config.EnvLogLevel, err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	a, err := agentlet.New(cfg, log)
	if err != nil {
		return err
	}
	// SIGTERM is how the kubelet stops the pod: cancel the run, end attach
	// sessions and exit within terminationGracePeriodSeconds.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return a.ListenAndServe(ctx)
}
