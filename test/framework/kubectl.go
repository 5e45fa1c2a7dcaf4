package framework

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
)

// KubectlCommand prepares the built kubectl against the cluster as the user of
// kubeconfig (the admin's when empty).
func (c *Cluster) KubectlCommand(ctx context.Context, kubeconfig string, args ...string) *exec.Cmd {
	if kubeconfig == "" {
		kubeconfig = c.KubeconfigPath
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = []string{"HOME=" + c.Dir, "PATH=" + c.BinDir + ":/usr/bin:/bin"}
	return cmd
}

// Kubectl runs the built kubectl and returns its standard output and error. The error
// includes stderr so a failing test says why.
func (c *Cluster) Kubectl(ctx context.Context, kubeconfig string, args ...string) (string, string, error) {
	return c.KubectlWithInput(ctx, kubeconfig, nil, args...)
}

// KubectlWithInput is Kubectl with stdin.
func (c *Cluster) KubectlWithInput(ctx context.Context, kubeconfig string, stdin io.Reader, args ...string) (string, string, error) {
	cmd := c.KubectlCommand(ctx, kubeconfig, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), stderr.String(), fmt.Errorf("kubectl %v: %w: %s", args, err, stderr.String())
	}
	return stdout.String(), stderr.String(), nil
}
