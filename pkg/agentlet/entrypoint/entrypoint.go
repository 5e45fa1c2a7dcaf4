// Package entrypoint lets the agentlet be the entrypoint of a container image
// that is not its own, the way Tekton's entrypoint and Argo's emissary
// executor do: an init container from the agentlet image copies the static
// binary into a volume shared with the runtime's container (Install), and the
// runtime's container starts it from there, so the agentlet runs the agent's
// CLI from the runtime image's own filesystem. There it is PID 1, and a PID 1
// has duties no ordinary server has (Init).
package entrypoint

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// InstallCommand is the first argument that makes the agentlet install itself
// instead of serving: `agentlet install DEST`.
const InstallCommand = "install"

// Install copies the running executable to dst (0555), atomically, so a
// container that starts while a restarted init container copies again never
// executes a half-written file.
func Install(dst string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	return copyExecutable(self, dst)
}

func copyExecutable(src, dst string) (err error) {
	if dst == "" || !filepath.IsAbs(dst) {
		return fmt.Errorf("install destination %q is not an absolute path", dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dst), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("install into %s: %w", filepath.Dir(dst), err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copy to %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o555); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	return nil
}
