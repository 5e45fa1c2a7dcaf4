// Command agentlet runs inside every Agent pod. It drives the agent's
// runtime CLI for each run, serves the manager an authenticated API for
// runs, output, recordings and attach, and records every session as
// asciicast v2. Every setting is a flag with an AGENTLET_* variable, which is
// how the manager configures it (pkg/agentlet/config, docs/agentlet.md); the
// command line wins.
//
// In a cluster it is the entrypoint of the runtime's container, not of its
// own image (pkg/agentlet/entrypoint): `agentlet install DEST` copies it into
// the pod's shared volume, and as PID 1 it runs itself as the child of a
// minimal init that reaps the CLI's orphans.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/exo-in-go/exo/pkg/agentlet"
	"github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/entrypoint"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == entrypoint.InstallCommand {
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: agentlet install DEST")
			os.Exit(2)
		}
		if err := entrypoint.Install(args[1]); err != nil {
			fmt.Fprintln(os.Stderr, "agentlet:", err)
			os.Exit(1)
		}
		return
	}
	// Before anything reads the token: from here on the runtime CLI, the same
	// user in the same container, cannot read this process's environment.
	if err := entrypoint.HideEnvironment(); err != nil {
		fmt.Fprintln(os.Stderr, "agentlet:", err)
		os.Exit(1)
	}
	if os.Getpid() == 1 {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "agentlet:", err)
			os.Exit(1)
		}
		os.Exit(entrypoint.Init(append([]string{self}, args...), os.Environ(), entrypoint.InitOptions{}))
	}
	if err := run(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "agentlet:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := config.Load(args, os.LookupEnv, os.Stderr)
	if err != nil {
		return err
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
