// Command agentkube-manager runs the agentkube runtime plane in one process: the
// controllers (Agents into pods, AgentRuns through the agentlet, schedules, Tools, MCP
// proxies, LLM gateways and Claw hosts), the admission webhook on :9443, the aggregated
// API subresources.agentkube.io on :8082, the certificates both serve, and, in managed
// mode, the tunnel to the platform. The process is assembled by pkg/manager/app, which
// the test harnesses call too. Every setting is a flag with an AGENTKUBE_* variable
// (flags win); --help prints the table, docs/manager.md describes it.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/exo-in-go/exo/pkg/manager/app"
)

func main() {
	if err := app.Main(os.Args[1:], os.LookupEnv, os.Environ()); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "agentkube-manager:", err)
		os.Exit(1)
	}
}
