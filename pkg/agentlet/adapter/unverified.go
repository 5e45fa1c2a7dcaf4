package adapter

import "errors"

// Aider, Goose and the Cursor agent could not be installed where these were
// written (PyPI unreachable; no npm or Debian package), so their command
// lines follow their documentation and are not verified against the real
// CLIs (docs/agentlet.md). They get no endpoint wiring: spec.model.baseURL
// reaches them only as AGENT_MODEL_BASE_URL.

func buildAider(spec Spec, prompt string, inv *Invocation) error {
	if spec.PromptFile == "" {
		return errors.New("aider: a prompt file path is required")
	}
	argv := []string{"aider", "--yes-always", "--no-pretty"}
	argv = appendFlag(argv, "--model", spec.Model)
	argv = append(argv, spec.Args...)
	inv.Argv = append(argv, "--message-file", spec.PromptFile)
	return nil
}

func buildGoose(spec Spec, prompt string, inv *Invocation) error {
	argv := []string{"goose", "run"}
	argv = appendFlag(argv, "--provider", spec.ModelProvider)
	argv = appendFlag(argv, "--model", spec.Model)
	argv = append(argv, spec.Args...)
	inv.Argv = append(argv, "--instructions", "-")
	inv.Stdin = prompt
	return nil
}

func buildCursor(spec Spec, prompt string, inv *Invocation) error {
	if err := argvPrompt(spec, prompt); err != nil {
		return err
	}
	argv := []string{"cursor-agent", "-p", "--output-format", "text"}
	argv = appendFlag(argv, "--model", spec.Model)
	argv = append(argv, spec.Args...)
	inv.Argv = append(argv, prompt)
	return nil
}
