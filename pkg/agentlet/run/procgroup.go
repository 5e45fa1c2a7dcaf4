package run

import (
	"errors"
	"os"
	"strings"
	"syscall"

	"github.com/exo-in-go/exo/pkg/agentlet/config"
)

// signalGroup sends sig to every process in the group led by pgid. A group
// that is already gone is not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 0 {
		return nil // never signal our own group (0) or every process (-1)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// ChildEnv is the agentlet's environment without its own AGENTLET_*
// variables (the token above all), plus extra. Later entries win.
func ChildEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
