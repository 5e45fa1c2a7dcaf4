package adapter

import (
	"encoding/json"
	"path/filepath"
)

// buildGemini: `gemini` with piped stdin and no -p runs headless on that
// prompt.
//
//   - ~/.gemini/settings.json selects API-key authentication (with
//     GOOGLE_GEMINI_BASE_URL the type taken from the environment is
//     "gateway", which headless runs refuse: "Invalid auth method selected",
//     exit 41), turns off usage statistics (play.googleapis.com) and bounds
//     its retries to two attempts: with the model down it fails after 5–20 s
//     ("Error when talking to Gemini API") instead of retrying for minutes.
//   - GEMINI_CLI_TRUST_WORKSPACE=true: an untrusted folder ends the run
//     (exit 55). --approval-mode yolo: headless runs otherwise leave out every
//     tool that asks for confirmation, the shell included.
//   - Without --model it first asks a small model to classify the task.
func buildGemini(spec Spec, prompt string, inv *Invocation) error {
	if err := requireHome(spec); err != nil {
		return err
	}
	argv := []string{"gemini", "--output-format", "text", "--approval-mode", "yolo"}
	argv = appendFlag(argv, "--model", spec.Model)
	inv.Argv = append(argv, spec.Args...)
	inv.Stdin = prompt
	if spec.ModelBaseURL != "" {
		inv.Env = append(inv.Env, "GOOGLE_GEMINI_BASE_URL="+apiRoot(spec.ModelBaseURL))
	}
	settings, _ := json.MarshalIndent(map[string]any{ // maps of JSON values: always marshal
		"security": map[string]any{"auth": map[string]any{"selectedType": "gemini-api-key"}},
		"privacy":  map[string]any{"usageStatisticsEnabled": false},
		"general":  map[string]any{"maxAttempts": 2, "disableAutoUpdate": true, "disableUpdateNag": true},
	}, "", "  ")
	inv.Files = append(inv.Files, File{Path: filepath.Join(spec.Home, ".gemini", "settings.json"), Content: append(settings, '\n'), Mode: 0o600})
	inv.Defaults = append(inv.Defaults, "GEMINI_CLI_TRUST_WORKSPACE=true")
	return nil
}
