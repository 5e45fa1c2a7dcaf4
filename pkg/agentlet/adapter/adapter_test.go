package adapter

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/exo-in-go/exo/pkg/agentlet/config"
)

func TestBuildArgv(t *testing.T) {
	base := Spec{
		RunID:         "r1",
		Goal:          "Keep the docs tidy.",
		Input:         "Fix the typo in README.",
		Model:         "sonnet",
		ModelProvider: "anthropic",
		Tools:         []string{"Read", "Edit"},
		Args:          []string{"--verbose"},
		PromptFile:    "/data/runs/r1/prompt.txt",
		Home:          "/home/agent",
	}
	prompt := "Keep the docs tidy.\n\nFix the typo in README."
	cases := []struct {
		runtime   config.Runtime
		wantArgv  []string
		wantStdin string
	}{
		// "--allowedTools=…": the variadic flag takes one value, so --verbose is not swallowed.
		{config.RuntimeClaudeCode, []string{"claude", "-p", "--output-format", "text", "--permission-mode", "bypassPermissions", "--model", "sonnet", "--allowedTools=Read,Edit", "--verbose"}, prompt},
		{config.RuntimeCodex, []string{"codex", "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "--model", "sonnet", "--verbose", "-"}, prompt},
		// No message argument: opencode run reads stdin, unquoted.
		{config.RuntimeOpenCode, []string{"opencode", "run", "--print-logs", "--log-level", "ERROR", "--model", "anthropic/sonnet", "--verbose"}, prompt},
		{config.RuntimeGemini, []string{"gemini", "--output-format", "text", "--approval-mode", "yolo", "--model", "sonnet", "--verbose"}, prompt},
		{config.RuntimeAider, []string{"aider", "--yes-always", "--no-pretty", "--model", "sonnet", "--verbose", "--message-file", "/data/runs/r1/prompt.txt"}, ""},
		{config.RuntimeCline, []string{"cline", "-y", "--verbose", "--", prompt}, ""},
		{config.RuntimeGoose, []string{"goose", "run", "--provider", "anthropic", "--model", "sonnet", "--verbose", "--instructions", "-"}, prompt},
		{config.RuntimeCursor, []string{"cursor-agent", "-p", "--output-format", "text", "--model", "sonnet", "--verbose", prompt}, ""},
	}
	for _, tc := range cases {
		t.Run(string(tc.runtime), func(t *testing.T) {
			spec := base
			spec.Runtime = tc.runtime
			inv, err := Build(spec)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(inv.Argv, tc.wantArgv) {
				t.Errorf("argv:\n got %q\nwant %q", inv.Argv, tc.wantArgv)
			}
			if inv.Stdin != tc.wantStdin {
				t.Errorf("stdin: got %q, want %q", inv.Stdin, tc.wantStdin)
			}
			if !slices.Contains(inv.Env, "AGENT_GOAL=Keep the docs tidy.") || !slices.Contains(inv.Env, "AGENT_RUN_ID=r1") {
				t.Errorf("env lacks the common variables: %q", inv.Env)
			}
		})
	}
}

// Every verified runtime is pointed at spec.model.baseURL the way its CLI
// takes an endpoint, and kept offline and bounded; the files go under HOME.
func TestModelEndpointAndOfflineSettings(t *testing.T) {
	spec := Spec{Model: "fake-model", ModelBaseURL: "http://127.0.0.1:18080/v1/", APIKey: "sk-test", Home: "/h", Input: "hi"}
	cases := []struct {
		runtime  config.Runtime
		env      []string
		defaults []string
		// files maps a path to strings its content must hold.
		files map[string][]string
	}{
		{config.RuntimeClaudeCode,
			[]string{"ANTHROPIC_BASE_URL=http://127.0.0.1:18080"},
			[]string{"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "CLAUDE_CODE_MAX_RETRIES=2", "DISABLE_AUTOUPDATER=1", "IS_SANDBOX=1"},
			nil},
		{config.RuntimeCodex,
			[]string{"CODEX_HOME=/h/.codex"}, nil,
			map[string][]string{"/h/.codex/config.toml": {
				"check_for_update_on_startup = false\nmodel_provider = \"agentkube\"\n",
				"[analytics]\nenabled = false\n", "[features]\nplugins = false\n",
				"[model_providers.agentkube]\nname = \"agentkube\"\nbase_url = \"http://127.0.0.1:18080/v1\"\nenv_key = \"OPENAI_API_KEY\"\nwire_api = \"responses\"\n",
			}}},
		{config.RuntimeOpenCode,
			[]string{"OPENCODE_CONFIG=/h/.config/opencode/agentkube.json"},
			[]string{"OPENCODE_DISABLE_MODELS_FETCH=1", "OPENCODE_DISABLE_AUTOUPDATE=1", "npm_config_registry=http://127.0.0.1:9/"},
			map[string][]string{"/h/.config/opencode/agentkube.json": {
				`"npm": "@ai-sdk/openai-compatible"`, `"baseURL": "http://127.0.0.1:18080/v1"`,
				`"apiKey": "{env:OPENCODE_API_KEY}"`, `"fake-model": {`, `"autoupdate": false`, `"share": "disabled"`,
			}}},
		{config.RuntimeGemini,
			[]string{"GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:18080"},
			[]string{"GEMINI_CLI_TRUST_WORKSPACE=true"},
			map[string][]string{"/h/.gemini/settings.json": {
				`"selectedType": "gemini-api-key"`, `"usageStatisticsEnabled": false`, `"maxAttempts": 2`,
			}}},
		{config.RuntimeCline,
			[]string{"CLINE_DIR=/h/.cline"},
			[]string{"CLINE_SESSION_BACKEND_MODE=local", "CLINE_NO_AUTO_UPDATE=1"},
			map[string][]string{
				"/h/.cline/data/settings/providers.json": {
					`"lastUsedProvider": "openai-compatible"`, `"baseUrl": "http://127.0.0.1:18080/v1"`,
					`"apiKey": "sk-test"`, `"model": "fake-model"`,
				},
				"/h/.cline/data/settings/global-settings.json": {`"telemetryOptOut": true`, `"autoUpdateEnabled": false`},
			}},
	}
	for _, tc := range cases {
		t.Run(string(tc.runtime), func(t *testing.T) {
			s := spec
			s.Runtime = tc.runtime
			inv, err := Build(s)
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range tc.env {
				if !slices.Contains(inv.Env, kv) {
					t.Errorf("env lacks %s: %q", kv, inv.Env)
				}
			}
			if !slices.Equal(inv.Defaults, tc.defaults) {
				t.Errorf("defaults %q, want %q", inv.Defaults, tc.defaults)
			}
			if len(inv.Files) != len(tc.files) {
				t.Errorf("%d files, want %d", len(inv.Files), len(tc.files))
			}
			for _, f := range inv.Files {
				if f.Mode != 0o600 {
					t.Errorf("%s: mode %o, want 0600 (it may hold a key)", f.Path, f.Mode)
				}
				for _, want := range tc.files[f.Path] {
					if !strings.Contains(string(f.Content), want) {
						t.Errorf("%s lacks %s:\n%s", f.Path, want, f.Content)
					}
				}
			}
		})
	}
}

func TestClinePromptShapes(t *testing.T) {
	for input, want := range map[string]string{
		"fix the tests": "fix the tests",
		// A prompt without whitespace is refused as an unknown command.
		"hello": "hello\n",
		// After "--", a prompt that starts with a dash is not a flag.
		"-rf everything": "-rf everything",
	} {
		inv, err := Build(Spec{Runtime: config.RuntimeCline, Input: input, Home: "/h"})
		if err != nil {
			t.Fatal(err)
		}
		if got := inv.Argv[len(inv.Argv)-2:]; !slices.Equal(got, []string{"--", want}) {
			t.Errorf("input %q: argv ends %q, want [-- %q]", input, got, want)
		}
	}
	// Without an endpoint or a provider Cline keeps the provider its HOME has.
	inv, err := Build(Spec{Runtime: config.RuntimeCline, Input: "a b", Home: "/h"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range inv.Files {
		if strings.HasSuffix(f.Path, "providers.json") {
			t.Errorf("providers.json written without an endpoint or provider: %s", f.Content)
		}
	}
}

func TestRuntimesThatWriteConfigurationNeedAHome(t *testing.T) {
	for _, r := range []config.Runtime{config.RuntimeCodex, config.RuntimeOpenCode, config.RuntimeGemini, config.RuntimeCline} {
		if _, err := Build(Spec{Runtime: r, Input: "a b"}); err == nil {
			t.Errorf("%s built without a HOME for its configuration", r)
		}
	}
}

func TestBuildCustom(t *testing.T) {
	inv, err := Build(Spec{
		Runtime:   config.RuntimeCustom,
		Command:   []string{"/bin/sh", "-c", "cat"},
		BaseArgs:  []string{"agent"},
		Args:      []string{"extra"},
		Input:     "hello",
		Goal:      "g",
		InputFile: "/data/input",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/sh", "-c", "cat", "agent", "extra"}; !slices.Equal(inv.Argv, want) {
		t.Errorf("argv: got %q, want %q", inv.Argv, want)
	}
	if inv.Stdin != "hello" {
		t.Errorf("custom stdin is the raw input, got %q", inv.Stdin)
	}
	for _, kv := range []string{"AGENT_INPUT=hello", "AGENT_INPUT_FILE=/data/input", "AGENT_GOAL=g"} {
		if !slices.Contains(inv.Env, kv) {
			t.Errorf("env lacks %s: %q", kv, inv.Env)
		}
	}

	if _, err := Build(Spec{Runtime: config.RuntimeCustom}); err == nil {
		t.Error("custom runtime without a command was accepted")
	}
}

func TestBuildLargeInput(t *testing.T) {
	big := strings.Repeat("x", MaxArgBytes+1)
	inv, err := Build(Spec{Runtime: config.RuntimeCustom, Command: []string{"cat"}, Input: big})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range inv.Env {
		if strings.HasPrefix(kv, EnvInput+"=") {
			t.Errorf("an input over %d bytes must not go into the environment", MaxArgBytes)
		}
	}
	if _, err := Build(Spec{Runtime: config.RuntimeCursor, Input: big}); !errors.Is(err, ErrPromptTooLong) {
		t.Errorf("Cursor with a huge prompt: got %v, want ErrPromptTooLong", err)
	}
	for _, r := range []config.Runtime{config.RuntimeClaudeCode, config.RuntimeCodex, config.RuntimeOpenCode, config.RuntimeGemini} {
		if _, err := Build(Spec{Runtime: r, Input: big, Home: "/h"}); err != nil {
			t.Errorf("%s takes its prompt on stdin and must accept a big one: %v", r, err)
		}
	}
	if _, err := Build(Spec{Runtime: config.RuntimeCline, Input: big, Home: "/h"}); !errors.Is(err, ErrPromptTooLong) {
		t.Errorf("Cline with a huge prompt: got %v, want ErrPromptTooLong", err)
	}
}

func TestEveryRuntimeHasAnAttachCommand(t *testing.T) {
	for _, r := range config.Runtimes {
		if len(AttachCommand(r, nil)) == 0 {
			t.Errorf("%s has no attach command", r)
		}
	}
	if got := AttachCommand(config.RuntimeClaudeCode, []string{"bash"}); !slices.Equal(got, []string{"bash"}) {
		t.Errorf("configured attach command ignored: %q", got)
	}
}
