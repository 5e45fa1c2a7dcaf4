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
	}
	prompt := "Keep the docs tidy.\n\nFix the typo in README."
	cases := []struct {
		runtime   config.Runtime
		wantArgv  []string
		wantStdin string
	}{
		{config.RuntimeClaudeCode, []string{"claude", "-p", "--output-format", "text", "--model", "sonnet", "--allowedTools", "Read,Edit", "--verbose"}, prompt},
		{config.RuntimeCodex, []string{"codex", "exec", "--skip-git-repo-check", "--model", "sonnet", "--verbose", "-"}, prompt},
		{config.RuntimeOpenCode, []string{"opencode", "run", "--model", "anthropic/sonnet", "--verbose", prompt}, ""},
		{config.RuntimeAider, []string{"aider", "--yes-always", "--no-pretty", "--model", "sonnet", "--verbose", "--message-file", "/data/runs/r1/prompt.txt"}, ""},
		{config.RuntimeCline, []string{"cline", "-y", "--verbose", prompt}, ""},
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
	if _, err := Build(Spec{Runtime: config.RuntimeClaudeCode, Input: big}); err != nil {
		t.Errorf("ClaudeCode takes its prompt on stdin and must accept a big one: %v", err)
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
