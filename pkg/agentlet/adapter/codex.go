package adapter

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// codexProvider names the model provider written for spec.model.baseURL.
const codexProvider = "agentkube"

// buildCodex: `codex exec` runs one task; "-" reads it from stdin; stdout
// holds only the final message (the transcript goes to stderr).
//
//   - A run is unattended and the pod is the sandbox, so approvals and
//     Codex's own sandbox (bubblewrap, which needs user namespaces a pod
//     rarely has) are off: --dangerously-bypass-approvals-and-sandbox.
//   - $CODEX_HOME/config.toml turns off analytics (ab.chatgpt.com) and plugins
//     (github.com, chatgpt.com), and with a base URL adds a provider speaking
//     the Responses API ("chat" is refused since 0.17x) with the key from
//     OPENAI_API_KEY.
//   - With the model down Codex prints "Reconnecting... waiting for network"
//     until stopped, whatever its retry settings: the run's timeout bounds it.
func buildCodex(spec Spec, prompt string, inv *Invocation) error {
	if err := requireHome(spec); err != nil {
		return err
	}
	argv := []string{"codex", "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"}
	argv = appendFlag(argv, "--model", spec.Model)
	argv = append(argv, spec.Args...)
	inv.Argv = append(argv, "-")
	inv.Stdin = prompt
	codexHome := filepath.Join(spec.Home, ".codex")
	inv.Env = append(inv.Env, "CODEX_HOME="+codexHome)
	inv.Files = append(inv.Files, File{Path: filepath.Join(codexHome, "config.toml"), Content: codexConfig(spec), Mode: 0o600})
	return nil
}

// codexConfig renders config.toml. Top-level keys come before the tables.
func codexConfig(spec Spec) []byte {
	var b strings.Builder
	b.WriteString("# Written by the agentlet before every run (docs/agentlet.md); changes are overwritten.\n")
	b.WriteString("check_for_update_on_startup = false\n")
	if spec.ModelBaseURL != "" {
		fmt.Fprintf(&b, "model_provider = %s\n", tomlString(codexProvider))
	}
	b.WriteString("\n[analytics]\nenabled = false\n\n[features]\nplugins = false\n")
	if spec.ModelBaseURL != "" {
		fmt.Fprintf(&b, "\n[model_providers.%s]\nname = %s\nbase_url = %s\nenv_key = %s\nwire_api = \"responses\"\n",
			codexProvider, tomlString(codexProvider), tomlString(apiRoot(spec.ModelBaseURL)+"/v1"), tomlString(TokenEnv(spec.Runtime)))
	}
	return []byte(b.String())
}

// tomlString quotes s as a TOML basic string, whose escapes are JSON's.
func tomlString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
