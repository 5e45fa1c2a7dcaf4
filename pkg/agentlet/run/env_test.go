package run

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/exo-in-go/exo/pkg/agentlet/adapter"
	"github.com/exo-in-go/exo/pkg/agentlet/config"
)

// The environment a run's CLI gets: the agentlet's without AGENTLET_*, the
// adapter's defaults only where the pod sets nothing (an Agent's spec.env
// wins), and the adapter's own variables over everything.
func TestSetUpMergesTheEnvironment(t *testing.T) {
	t.Setenv("AGENTLET_TOKEN", "secret")
	t.Setenv("CLAUDE_CODE_MAX_RETRIES", "7") // as an Agent's spec.env would set it
	t.Setenv("ANTHROPIC_BASE_URL", "http://stale")
	home := t.TempDir()
	inv, err := adapter.Build(adapter.Spec{Runtime: config.RuntimeClaudeCode, Input: "hi", ModelBaseURL: "http://model:8080", Home: home})
	if err != nil {
		t.Fatal(err)
	}
	env, err := setUp(inv, home, true)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) []string {
		var values []string
		for _, kv := range env {
			if k, v, _ := strings.Cut(kv, "="); k == name {
				values = append(values, v)
			}
		}
		return values
	}
	if v := get("AGENTLET_TOKEN"); v != nil {
		t.Errorf("the agentlet's token reaches the runtime: %q", v)
	}
	if v := get("CLAUDE_CODE_MAX_RETRIES"); !slices.Equal(v, []string{"7"}) {
		t.Errorf("CLAUDE_CODE_MAX_RETRIES = %q; the pod's value must win over the default", v)
	}
	if v := get("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"); !slices.Equal(v, []string{"1"}) {
		t.Errorf("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = %q; the default must apply", v)
	}
	// exec uses the last value of a name: the adapter's endpoint wins.
	if v := get("ANTHROPIC_BASE_URL"); len(v) == 0 || v[len(v)-1] != "http://model:8080" {
		t.Errorf("ANTHROPIC_BASE_URL = %q, want the Agent's endpoint last", v)
	}
	if v := get("HOME"); len(v) == 0 || v[len(v)-1] != home {
		t.Errorf("HOME = %q, want the agentlet's choice %s last", v, home)
	}
}

// Attach sessions get the runs' setup: configuration files in HOME and the
// same variables.
func TestRuntimeEnvWritesTheConfiguration(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("OPENAI_API_KEY", "sk-x")
	cfg := config.Default()
	cfg.Runtime, cfg.Model, cfg.ModelBaseURL, cfg.DataDir = config.RuntimeCodex, "m", "http://model:8080", t.TempDir()
	env, err := RuntimeEnv(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(env, "CODEX_HOME="+filepath.Join(home, ".codex")) {
		t.Errorf("CODEX_HOME missing: %q", env)
	}
	b, err := os.ReadFile(filepath.Join(home, ".codex", "config.toml"))
	if err != nil || !strings.Contains(string(b), `base_url = "http://model:8080/v1"`) {
		t.Errorf("config.toml: %v\n%s", err, b)
	}
	if strings.Contains(string(b), "sk-x") {
		t.Errorf("config.toml holds the key; it must name the variable:\n%s", b)
	}
}

// A HOME that cannot be written (an image's read-only root) is replaced by
// one in the data directory.
func TestRuntimeHomeFallsBackToTheDataDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes anywhere; a HOME that is a file cannot be a directory for anyone.
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("HOME", f)
	} else {
		ro := t.TempDir()
		if err := os.Chmod(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Setenv("HOME", ro)
	}
	data := t.TempDir()
	home, own, err := runtimeHome(data)
	if err != nil || !own || home != filepath.Join(data, "home") {
		t.Errorf("runtimeHome = %q, %v, %v; want %s of its own", home, own, err, filepath.Join(data, "home"))
	}
}
