package run

import "syscall"

// processGroupAttr puts the child in a new process group, so the whole tree
// it spawns can be signalled at once, and kills it if the agentlet dies
// without cleaning up (for example after SIGKILL or an OOM kill).
func processGroupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
