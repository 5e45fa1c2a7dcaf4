// Package adapter knows how each agent CLI is started non-interactively with
// a goal and an input, which environment and configuration files keep it
// offline and bounded, and which command an interactive attach runs.
//
// Build is the single source of truth for the command lines; its tests pin
// every argv, and docs/agentlet.md shows the same table. Prompts go through
// stdin wherever the CLI reads it, because Linux limits a single argv element
// or environment string to 128 KiB. The command lines of ClaudeCode, Codex,
// OpenCode, Gemini and Cline were checked against the real CLIs (the versions
// of hack/agent-clis.txt, by test/runtimes); Aider, Goose and Cursor could not
// be installed where this was written and are not verified.
package adapter

import (
	"errors"
	"fmt"
	"os"
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
	EnvModelBaseURL  = "AGENT_MODEL_BASE_URL"
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
	// ModelBaseURL is where the model API is (spec.model.baseURL): the root
	// URL the runtime's own API paths go under.
	ModelBaseURL string
	// APIKey is the value of the runtime's token variable (TokenEnv), for
	// the CLIs that take their key from a configuration file only (Cline).
	APIKey string
	Tools  []string
	// Command and BaseArgs are the Custom runtime's command line.
	Command  []string
	BaseArgs []string
	// Args come from the run request and are added to every runtime.
	Args []string
	// InputFile and PromptFile are paths the run manager writes the input
	// and the composed prompt to before starting the process.
	InputFile  string
	PromptFile string
	// Home is the runtime's HOME, a writable directory: the configuration
	// files are written under it, never into the image.
	Home string
}

// Invocation is how to start one run.
type Invocation struct {
	Argv []string
	// Env is added to the agentlet's own environment (minus AGENTLET_*),
	// winning over it.
	Env []string
	// Defaults are added only when the environment does not set them
	// already, so that an Agent's spec.env can change them (a proxy, a
	// registry, more retries).
	Defaults []string
	// Files are written before the process starts.
	Files []File
	// Stdin is written to the process's standard input, which is then
	// closed; the CLIs that read their prompt from stdin start on EOF.
	Stdin string
}

// File is a configuration file a runtime needs.
type File struct {
	Path    string
	Content []byte
	Mode    os.FileMode
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

// runtime is one CLI's adapter.
type runtime struct {
	// build fills inv (whose Env holds the common variables) for spec and
	// the composed prompt.
	build func(spec Spec, prompt string, inv *Invocation) error
	// attach is the interactive command.
	attach []string
}

var runtimes = map[config.Runtime]runtime{
	config.RuntimeClaudeCode: {buildClaude, []string{"claude"}},
	config.RuntimeCodex:      {buildCodex, []string{"codex"}},
	config.RuntimeOpenCode:   {buildOpenCode, []string{"opencode"}},
	config.RuntimeGemini:     {buildGemini, []string{"gemini"}},
	config.RuntimeCline:      {buildCline, []string{"cline"}},
	config.RuntimeAider:      {buildAider, []string{"aider"}},
	config.RuntimeGoose:      {buildGoose, []string{"goose", "session"}},
	config.RuntimeCursor:     {buildCursor, []string{"cursor-agent"}},
	config.RuntimeCustom:     {buildCustom, []string{"/bin/sh"}},
}

// tokenEnvs are the variables the CLIs read their API key from.
var tokenEnvs = map[config.Runtime]string{
	config.RuntimeClaudeCode: "ANTHROPIC_API_KEY",
	config.RuntimeCodex:      "OPENAI_API_KEY",
	config.RuntimeOpenCode:   "OPENCODE_API_KEY",
	config.RuntimeGemini:     "GEMINI_API_KEY",
	config.RuntimeCline:      "ANTHROPIC_API_KEY",
	config.RuntimeAider:      "OPENAI_API_KEY",
	config.RuntimeGoose:      "OPENAI_API_KEY",
	config.RuntimeCursor:     "CURSOR_API_KEY",
}

// Build returns the invocation of spec's runtime.
func Build(spec Spec) (Invocation, error) {
	rt, ok := runtimes[spec.Runtime]
	if !ok {
		return Invocation{}, fmt.Errorf("unknown runtime %q", spec.Runtime)
	}
	inv := Invocation{Env: commonEnv(spec)}
	if err := rt.build(spec, Prompt(spec.Goal, spec.Input), &inv); err != nil {
		return Invocation{}, err
	}
	return inv, nil
}

// AttachCommand is what an interactive attach runs in its PTY: the
// configured command if there is one, else the runtime's interactive CLI.
func AttachCommand(runtime config.Runtime, configured []string) []string {
	if len(configured) > 0 {
		return configured
	}
	if rt, ok := runtimes[runtime]; ok {
		return rt.attach
	}
	return []string{"/bin/sh"}
}

// TokenEnv is the variable a runtime's CLI reads its API key from (the
// Agent's agentToken goes there); AGENT_TOKEN for Custom, whose command
// decides what to do with it. pkg/runtimes' matrix holds the same names.
func TokenEnv(runtime config.Runtime) string {
	if env, ok := tokenEnvs[runtime]; ok {
		return env
	}
	return "AGENT_TOKEN"
}

func buildCustom(spec Spec, _ string, inv *Invocation) error {
	if len(spec.Command) == 0 {
		return errors.New("custom runtime: no command configured")
	}
	inv.Argv = append(append(append([]string{}, spec.Command...), spec.BaseArgs...), spec.Args...)
	// A script reads its input from stdin; the goal is in AGENT_GOAL.
	inv.Stdin = spec.Input
	return nil
}

func commonEnv(spec Spec) []string {
	env := []string{
		EnvGoal + "=" + spec.Goal,
		EnvRunID + "=" + spec.RunID,
		EnvModel + "=" + spec.Model,
		EnvModelProvider + "=" + spec.ModelProvider,
		EnvModelBaseURL + "=" + spec.ModelBaseURL,
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

// argvPrompt checks that a prompt fits one argv element, for the CLIs that
// take it nowhere else.
func argvPrompt(spec Spec, prompt string) error {
	if len(prompt) > MaxArgBytes {
		return fmt.Errorf("%s: %w (%d bytes, max %d)", spec.Runtime, ErrPromptTooLong, len(prompt), MaxArgBytes)
	}
	return nil
}

// apiRoot is the model base URL without a trailing slash or /v1: the root
// that Anthropic's and Gemini's clients add their versioned paths to.
// OpenAI-style clients get apiRoot + "/v1".
func apiRoot(baseURL string) string {
	return strings.TrimSuffix(strings.TrimRight(baseURL, "/"), "/v1")
}

// requireHome says that a runtime writes configuration and needs a HOME.
func requireHome(spec Spec) error {
	if spec.Home == "" {
		return fmt.Errorf("%s: a HOME directory for the runtime's configuration is required", spec.Runtime)
	}
	return nil
}
