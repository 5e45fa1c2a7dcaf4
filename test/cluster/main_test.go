// Package cluster installs the product on a real node exactly as docs/install.md tells a
// user, from the project's own images, and uses it as a user would: helm installs both
// charts (the runtime plane managed by the control plane, which it reaches by its
// cluster DNS name), an Agent runs in a real container with the injected agentlet, and
// kubectl, the kubectl-agent plugin and the dashboard API drive it. The node is
// test/realnode's: a real kubelet with containerd and runc, kube-proxy, CoreDNS,
// kube-controller-manager and kube-scheduler, in a network namespace of its own.
package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/realnode"
)

// env is what every test of the package shares: one node with the project's images.
var env struct {
	node *realnode.Cluster
	// bin holds the host binaries the user runs besides kubectl: the kubectl-agent
	// plugin (found on PATH) and helm.
	bin string
	// busybox is the image the sample Agent runs here: a shell image the node has.
	busybox string
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "exo-cluster-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	archives, err := projectImages(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	busybox, err := realnode.BusyboxImage(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.busybox = realnode.BusyboxImageRef
	env.bin = filepath.Join(dir, "bin")
	if err := goBuild(ctx, env.bin, "./cmd/kubectl-agent"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := time.Now()
	node, err := realnode.Start(ctx, realnode.Options{
		Images: append(archives, busybox),
		Logf:   func(format string, args ...any) { fmt.Fprintf(os.Stderr, "realnode: "+format+"\n", args...) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "real node up in %s\n", time.Since(start).Round(time.Millisecond))
	defer func() {
		if err := node.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the node:", err)
		}
	}()
	if err := os.Symlink(filepath.Join(node.BinDir, "helm"), filepath.Join(env.bin, "helm")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.node = node
	return m.Run()
}

// projectImages builds the images the charts and the manager name
// (ghcr.io/exo-in-go/<name>:<VERSION>) for this machine's platform, as `make images`
// does, into dir, and returns the archives.
func projectImages(ctx context.Context, dir string) ([]string, error) {
	out := filepath.Join(dir, "images")
	cmd := exec.CommandContext(ctx, filepath.Join(framework.RepoRoot(), "hack", "images.sh"), "release",
		"--platforms", "linux/"+runtime.GOARCH, "--out", out, "--bin", filepath.Join(out, "bin"))
	cmd.Dir = framework.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the project's images: %w\n%s", err, b)
	}
	return filepath.Glob(filepath.Join(out, "*.tar"))
}

func goBuild(ctx context.Context, out string, pkgs ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", out + "/"}, pkgs...)...)
	cmd.Dir = framework.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, b)
	}
	return nil
}
