package adapter

import (
	"encoding/json"
	"path/filepath"
	"strings"
)

// opencodeProvider names the provider written for spec.model.baseURL.
const opencodeProvider = "agentkube"

// buildOpenCode: `opencode run` without a message reads the prompt from
// stdin, unquoted; a prompt given as an argument reaches the model wrapped in
// double quotes, and would be limited to 128 KiB.
//
//   - OPENCODE_CONFIG names a configuration written per run: no autoupdate,
//     no sharing, and with a base URL a provider through the bundled
//     @ai-sdk/openai-compatible (Chat Completions) with the key from
//     OPENCODE_API_KEY ({env:…}: the key is never written to disk).
//   - It fetches models.dev unless OPENCODE_DISABLE_MODELS_FETCH=1, and asks
//     the npm registry for plugin packages on every run unless
//     npm_config_registry points elsewhere: a closed local port makes that
//     fail at once, and the run goes on.
//   - --print-logs --log-level ERROR puts its errors (a model that cannot be
//     reached: "Cannot connect to API") into the run's output; it retries
//     that without end, so the run's timeout bounds it.
func buildOpenCode(spec Spec, prompt string, inv *Invocation) error {
	if err := requireHome(spec); err != nil {
		return err
	}
	model := providerModel(spec.ModelProvider, spec.Model)
	if spec.ModelBaseURL != "" && spec.Model != "" {
		model = opencodeProvider + "/" + spec.Model
	}
	argv := []string{"opencode", "run", "--print-logs", "--log-level", "ERROR"}
	argv = appendFlag(argv, "--model", model)
	inv.Argv = append(argv, spec.Args...)
	inv.Stdin = prompt
	path := filepath.Join(spec.Home, ".config", "opencode", "agentkube.json")
	inv.Env = append(inv.Env, "OPENCODE_CONFIG="+path)
	inv.Files = append(inv.Files, File{Path: path, Content: opencodeConfig(spec), Mode: 0o600})
	inv.Defaults = append(inv.Defaults,
		"OPENCODE_DISABLE_MODELS_FETCH=1",
		"OPENCODE_DISABLE_AUTOUPDATE=1",
		"npm_config_registry=http://127.0.0.1:9/",
	)
	return nil
}

func opencodeConfig(spec Spec) []byte {
	cfg := map[string]any{
		"$schema":    "https://opencode.ai/config.json",
		"autoupdate": false,
		"share":      "disabled",
	}
	if spec.ModelBaseURL != "" && spec.Model != "" {
		cfg["provider"] = map[string]any{opencodeProvider: map[string]any{
			"npm":  "@ai-sdk/openai-compatible",
			"name": opencodeProvider,
			"options": map[string]any{
				"baseURL": apiRoot(spec.ModelBaseURL) + "/v1",
				"apiKey":  "{env:" + TokenEnv(spec.Runtime) + "}",
			},
			"models": map[string]any{spec.Model: map[string]any{"name": spec.Model}},
		}}
	}
	b, _ := json.MarshalIndent(cfg, "", "  ") // maps of strings: always marshal
	return append(b, '\n')
}

// providerModel renders OpenCode's "provider/model" form.
func providerModel(provider, model string) string {
	if model == "" || provider == "" || strings.Contains(model, "/") {
		return model
	}
	return provider + "/" + model
}
