//go:build unix && !linux

package run

import "syscall"

// processGroupAttr puts the child in a new process group, so the whole tree
// it spawns can be signalled at once.
func processGroupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
