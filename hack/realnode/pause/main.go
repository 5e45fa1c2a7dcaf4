// Command pause is the sandbox ("pause") container of the real-node test cluster
// (test/realnode): containerd starts it first in every pod to hold the pod's namespaces.
// It sleeps, reaps the zombies of processes that end up as its children (it is PID 1 of
// pods that share their process namespace), and exits 0 on SIGTERM or SIGINT, so a pod
// stops at once instead of after its grace period.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every child that has ended; one SIGCHLD may stand for several.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
