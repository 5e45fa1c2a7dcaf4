package adapter

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"time"
)

// buildCline: `cline -y` ("yolo", hidden from --help) is Cline's headless
// mode: tools run without asking, and the run ends when the model calls its
// submit_and_exit tool. Stdin is not a prompt source ("interactive mode
// requires a TTY"), so the prompt is the last argument, after "--" so that
// one starting with "-" is not taken for a flag; a prompt without
// whitespace is refused as an unknown command, so one gets a newline.
//
//   - The provider comes from $CLINE_DIR/data/settings/providers.json (what
//     `cline auth` writes), with the key itself: Cline reads it from nowhere
//     else. With a base URL it is "openai-compatible" (Chat Completions).
//   - global-settings.json opts out of telemetry (otel.cline.bot) and
//     updates. Its feature flags (data.cline.bot) have no switch: that
//     lookup fails offline and the run goes on.
//   - CLINE_SESSION_BACKEND_MODE=local: otherwise it leaves a hub daemon
//     running after the run.
//   - With the model down it retries until stopped: the run's timeout
//     bounds it, and "Cannot connect to API" is printed when it is stopped.
func buildCline(spec Spec, prompt string, inv *Invocation) error {
	if err := argvPrompt(spec, prompt); err != nil {
		return err
	}
	if err := requireHome(spec); err != nil {
		return err
	}
	if !strings.ContainsAny(prompt, " \t\n") {
		prompt += "\n"
	}
	argv := append([]string{"cline", "-y"}, spec.Args...)
	inv.Argv = append(argv, "--", prompt)
	dir := filepath.Join(spec.Home, ".cline")
	settings := filepath.Join(dir, "data", "settings")
	inv.Env = append(inv.Env, "CLINE_DIR="+dir)
	inv.Files = append(inv.Files, File{
		Path:    filepath.Join(settings, "global-settings.json"),
		Content: jsonFile(map[string]any{"telemetryOptOut": true, "autoUpdateEnabled": false}),
		Mode:    0o600,
	})
	if p := clineProvider(spec); p != nil {
		inv.Files = append(inv.Files, File{Path: filepath.Join(settings, "providers.json"), Content: jsonFile(p), Mode: 0o600})
	}
	inv.Defaults = append(inv.Defaults, "CLINE_SESSION_BACKEND_MODE=local", "CLINE_NO_AUTO_UPDATE=1")
	return nil
}

// clineProvider is providers.json for spec, nil when the Agent names no
// endpoint and no provider (Cline then uses what its HOME already holds).
func clineProvider(spec Spec) map[string]any {
	settings := map[string]any{"apiKey": spec.APIKey}
	switch {
	case spec.ModelBaseURL != "":
		settings["provider"] = "openai-compatible"
		settings["baseUrl"] = apiRoot(spec.ModelBaseURL) + "/v1"
	case spec.ModelProvider != "":
		settings["provider"] = spec.ModelProvider
	default:
		return nil
	}
	if spec.Model != "" {
		settings["model"] = spec.Model
	}
	id := settings["provider"].(string)
	return map[string]any{
		"version":          1,
		"lastUsedProvider": id,
		"modes":            map[string]any{},
		"providers": map[string]any{id: map[string]any{
			"settings":    settings,
			"updatedAt":   time.Unix(0, 0).UTC().Format(time.RFC3339),
			"tokenSource": "manual",
		}},
	}
}

func jsonFile(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ") // maps of JSON values: always marshal
	return append(b, '\n')
}
