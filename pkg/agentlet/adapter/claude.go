package adapter

import "strings"

// buildClaude: `claude -p` prints the final answer as text and reads the
// prompt from stdin.
//
//   - --allowedTools takes a variadic list (<tools...>), so in its "--flag
//     value" form it swallows every positional argument after it, a request's
//     args included; the "--allowedTools=T1,T2" form takes exactly one value.
//   - A run is unattended, so tools run without asking (bypassPermissions):
//     the pod is the sandbox. Claude Code refuses that as root unless
//     IS_SANDBOX=1, which says the same.
//   - CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 stops its calls to other
//     hosts than the model's (api.anthropic.com lookups, HEAD /api/hello);
//     CLAUDE_CODE_MAX_RETRIES bounds its retries: with the model down it
//     otherwise retries silently for more than a minute, with 2 it fails in
//     about 3 s with "API Error: Connection refused".
func buildClaude(spec Spec, prompt string, inv *Invocation) error {
	argv := []string{"claude", "-p", "--output-format", "text", "--permission-mode", "bypassPermissions"}
	argv = appendFlag(argv, "--model", spec.Model)
	if len(spec.Tools) > 0 {
		argv = append(argv, "--allowedTools="+strings.Join(spec.Tools, ","))
	}
	inv.Argv = append(argv, spec.Args...)
	inv.Stdin = prompt
	if spec.ModelBaseURL != "" {
		inv.Env = append(inv.Env, "ANTHROPIC_BASE_URL="+apiRoot(spec.ModelBaseURL))
	}
	inv.Defaults = append(inv.Defaults,
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"CLAUDE_CODE_MAX_RETRIES=2",
		"DISABLE_AUTOUPDATER=1",
		"IS_SANDBOX=1",
	)
	return nil
}
