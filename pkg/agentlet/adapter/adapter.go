// Package adapter knows how each agent CLI is started non-interactively with
// a goal and an input, and which command an interactive attach runs.
//
// Build is the single source of truth for the command lines; its tests pin
// every argv, and docs/agentlet.md shows the same table. Prompts go through
// stdin or a file wherever the CLI allows it, because Linux limits a single
// argv element or environment string to 128 KiB.
package adapter

import (
	"errors"
	"fmt"
	"strings"

	"github.com/exo-in-go/exo/pkg/agentlet/config"
)

// Environment variables given to every run.
const (
	EnvGoal          = "AGENT_GOAL"
	EnvInput         = "AGENT_INPUT"
	EnvInputFile     = "AGENT_INPUT_FILE"
	EnvPromptFile    = "AGENT_PROMPT_FILE"
	EnvRunID         = "AGENT_RUN_ID"
	EnvModel         = "AGENT_MODEL"
	EnvModelProvider = "AGENT_MODEL_PROVIDER"
	EnvTools         = "AGENT_TOOLS"
)

// MaxArgBytes is the longest prompt passed as a single argv element or
// environment value. Linux refuses exec with E2BIG when any one string is
// longer than MAX_ARG_STRLEN (128 KiB), so larger prompts must go through
// stdin or a file; runtimes that only accept the prompt as an argument
// reject them with ErrPromptTooLong.
const MaxArgBytes = 100 << 10

// ErrPromptTooLong means the runtime can only take the prompt on its command
// line and the prompt does not fit there.
var ErrPromptTooLong = errors.New("prompt too long for this runtime's command line")

// Spec is what a run needs from the Agent and the request.
type Spec struct {
	RunID         string
	Runtime       config.Runtime
	Goal          string
	Input         string
	Model         string
	ModelProvider string
	Tools         []string
	// Command and BaseArgs are the Custom runtime's command line.
	Command  []string
	BaseArgs []string
	// Args come from the run request and are added to every runtime.
	Args []string
	// InputFile and PromptFile are paths the run manager writes the input
	// and the composed prompt to before starting the process.
	InputFile  string
	PromptFile string
}

// Invocation is how to start one run.
type Invocation struct {
	Argv []string
	// Env is added to the agentlet's own environment (minus AGENTLET_*).
	Env []string
	// Stdin is written to the process's standard input, which is then
	// closed; the CLIs that read their prompt from stdin start on EOF.
	Stdin string
}

// Prompt combines the Agent's standing goal with the run's input, the way
// every non-Custom runtime receives it.
func Prompt(goal, input string) string {
	goal, input = strings.TrimSpace(goal), strings.TrimSpace(input)
	switch {
	case goal == "":
		return input
	case input == "":
		return goal
	default:
		return goal + "\n\n" + input
	}
}

// Build returns the invocation of spec's runtime.
func Build(spec Spec) (Invocation, error) {
	prompt := Prompt(spec.Goal, spec.Input)
	inv := Invocation{Env: commonEnv(spec)}
	var argv []string
	switch spec.Runtime {
	case config.RuntimeClaudeCode:
		argv = []string{"claude", "-p", "--output-format", "text"}
		argv = appendFlag(argv, "--model", spec.Model)
		if len(spec.Tools) > 0 {
			argv = append(argv, "--allowedTools", strings.Join(spec.Tools, ","))
		}
		argv = append(argv, spec.Args...)
		inv.Stdin = prompt // `claude -p` reads the prompt from stdin
	case config.RuntimeCodex:
		argv = []string{"codex", "exec", "--skip-git-repo-check"}
		argv = appendFlag(argv, "--model", spec.Model)
		argv = append(argv, spec.Args...)
		argv = append(argv, "-") // "-": read the instructions from stdin
		inv.Stdin = prompt
	case config.RuntimeOpenCode:
		if len(prompt) > MaxArgBytes {
			return Invocation{}, fmt.Errorf("%s: %w (%d bytes, max %d)", spec.Runtime, ErrPromptTooLong, len(prompt), MaxArgBytes)
		}
		argv = []string{"opencode", "run"}
		argv = appendFlag(argv, "--model", providerModel(spec.ModelProvider, spec.Model))
		argv = append(argv, spec.Args...)
		argv = append(argv, prompt)
	case config.RuntimeAider:
		if spec.PromptFile == "" {
			return Invocation{}, errors.New("aider: a prompt file path is required")
		}
		argv = []string{"aider", "--yes-always", "--no-pretty"}
		argv = appendFlag(argv, "--model", spec.Model)
		argv = append(argv, spec.Args...)
		argv = append(argv, "--message-file", spec.PromptFile)
	case config.RuntimeCline:
		if len(prompt) > MaxArgBytes {
			return Invocation{}, fmt.Errorf("%s: %w (%d bytes, max %d)", spec.Runtime, ErrPromptTooLong, len(prompt), MaxArgBytes)
		}
		argv = []string{"cline", "-y"}
		argv = append(argv, spec.Args...)
		argv = append(argv, prompt)
	case config.RuntimeGoose:
		argv = []string{"goose", "run"}
		argv = appendFlag(argv, "--provider", spec.ModelProvider)
		argv = appendFlag(argv, "--model", spec.Model)
		argv = append(argv, spec.Args...)
		argv = append(argv, "--instructions", "-")
		inv.Stdin = prompt
	case config.RuntimeCursor:
		if len(prompt) > MaxArgBytes {
			return Invocation{}, fmt.Errorf("%s: %w (%d bytes, max %d)", spec.Runtime, ErrPromptTooLong, len(prompt), MaxArgBytes)
		}
		argv = []string{"cursor-agent", "-p", "--output-format", "text"}
		argv = appendFlag(argv, "--model", spec.Model)
		argv = append(argv, spec.Args...)
		argv = append(argv, prompt)
	case config.RuntimeCustom:
		if len(spec.Command) == 0 {
			return Invocation{}, errors.New("custom runtime: no command configured")
		}
		argv = append(argv, spec.Command...)
		argv = append(argv, spec.BaseArgs...)
		argv = append(argv, spec.Args...)
		// A script reads its input from stdin; the goal is in AGENT_GOAL.
		inv.Stdin = spec.Input
	default:
		return Invocation{}, fmt.Errorf("unknown runtime %q", spec.Runtime)
	}
	inv.Argv = argv
	return inv, nil
}

// AttachCommand is what an interactive attach runs in its PTY: the
// configured command if there is one, else the runtime's interactive CLI.
func AttachCommand(runtime config.Runtime, configured []string) []string {
	if len(configured) > 0 {
		return configured
	}
	switch runtime {
	case config.RuntimeClaudeCode:
		return []string{"claude"}
	case config.RuntimeCodex:
		return []string{"codex"}
	case config.RuntimeOpenCode:
		return []string{"opencode"}
	case config.RuntimeAider:
		return []string{"aider"}
	case config.RuntimeCline:
		return []string{"cline"}
	case config.RuntimeGoose:
		return []string{"goose", "session"}
	case config.RuntimeCursor:
		return []string{"cursor-agent"}
	default:
		return []string{"/bin/sh"}
	}
}

func commonEnv(spec Spec) []string {
	env := []string{
		EnvGoal + "=" + spec.Goal,
		EnvRunID + "=" + spec.RunID,
		EnvModel + "=" + spec.Model,
		EnvModelProvider + "=" + spec.ModelProvider,
		EnvTools + "=" + strings.Join(spec.Tools, ","),
	}
	if len(spec.Input) <= MaxArgBytes {
		env = append(env, EnvInput+"="+spec.Input)
	}
	if spec.InputFile != "" {
		env = append(env, EnvInputFile+"="+spec.InputFile)
	}
	if spec.PromptFile != "" {
		env = append(env, EnvPromptFile+"="+spec.PromptFile)
	}
	return env
}

func appendFlag(argv []string, flag, value string) []string {
	if value == "" {
		return argv
	}
	return append(argv, flag, value)
}

// providerModel renders OpenCode's "provider/model" form.
func providerModel(provider, model string) string {
	if model == "" || provider == "" || strings.Contains(model, "/") {
		return model
	}
	return provider + "/" + model
}
