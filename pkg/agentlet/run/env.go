package run

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/exo-in-go/exo/pkg/agentlet/adapter"
	"github.com/exo-in-go/exo/pkg/agentlet/config"
)

// runtimeHome is the runtime's HOME, where the adapters write the CLIs'
// configuration: the environment's HOME when it is a writable directory
// (the pod's home volume), else <data dir>/home, which then becomes HOME.
// Never the image: its root filesystem is read-only.
func runtimeHome(dataDir string) (home string, own bool, err error) {
	if h := os.Getenv("HOME"); h != "" && filepath.IsAbs(h) {
		if err := os.MkdirAll(h, 0o700); err == nil && unix.Access(h, unix.W_OK) == nil {
			return h, false, nil
		}
	}
	home = filepath.Join(dataDir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", false, fmt.Errorf("create a HOME for the runtime: %w", err)
	}
	return home, true, nil
}

// setUp writes the invocation's configuration files and returns the
// runtime's environment: the agentlet's own without AGENTLET_*, the
// adapter's defaults that it does not set, HOME when the agentlet chose it,
// and the adapter's variables.
func setUp(inv adapter.Invocation, home string, ownHome bool) ([]string, error) {
	var errs []error
	for _, f := range inv.Files {
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", f.Path, err))
			continue
		}
		if err := os.WriteFile(f.Path, f.Content, f.Mode); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", f.Path, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	env := ChildEnv(nil)
	set := map[string]bool{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	for _, kv := range inv.Defaults {
		if name, _, _ := strings.Cut(kv, "="); !set[name] {
			env = append(env, kv)
		}
	}
	if ownHome {
		env = append(env, "HOME="+home)
	}
	return append(env, inv.Env...), nil
}

// RuntimeEnv is the environment an interactive attach session gives the
// runtime's CLI: the one its runs get (model endpoint, offline settings,
// HOME), with its configuration files written, so that `claude` or `codex`
// in a terminal talks to the same model as the runs.
func RuntimeEnv(cfg config.Config) ([]string, error) {
	home, own, err := runtimeHome(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	spec := runtimeSpec(cfg, home)
	if cfg.Runtime == config.RuntimeCustom {
		spec.Command = []string{"/bin/sh"} // attach has its own command; only the setup matters
	}
	inv, err := adapter.Build(spec)
	if err != nil {
		return nil, err
	}
	return setUp(inv, home, own)
}

// runtimeSpec is the part of a run's adapter.Spec that comes from the
// configuration.
func runtimeSpec(cfg config.Config, home string) adapter.Spec {
	return adapter.Spec{
		Runtime:       cfg.Runtime,
		Goal:          cfg.Goal,
		Model:         cfg.Model,
		ModelProvider: cfg.ModelProvider,
		ModelBaseURL:  cfg.ModelBaseURL,
		APIKey:        os.Getenv(adapter.TokenEnv(cfg.Runtime)),
		Tools:         cfg.Tools,
		Command:       cfg.Command,
		BaseArgs:      cfg.Args,
		Home:          home,
	}
}
