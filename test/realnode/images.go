package realnode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/exo-in-go/exo/test/framework"
)

// Images the harness builds. They are named under realnode.test, a name no registry can
// have (.test is reserved), so nothing is ever pulled by mistake: the cluster has no
// network, and a pod whose image was not imported fails with ErrImageNeverPull (or a pull
// error for "network is unreachable").
const (
	pauseImageRef   = "realnode.test/pause:v1"
	corednsImageRef = "realnode.test/coredns:v1.15.0"
	// BusyboxImageRef is the shell image of BusyboxImage.
	BusyboxImageRef = "realnode.test/busybox:1.35.0"
)

// imageCache is where built image archives are kept between runs.
func imageCache() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the user cache: %w", err)
	}
	return filepath.Join(cache, "exo-in-go", "realnode"), nil
}

// BusyboxImage returns the archive of BusyboxImageRef, building it the first time: Debian's
// static busybox (unpacked by hack/realnode/install-deps.sh) as /bin/sh, which runs every
// busybox applet by name without links (sh -c 'ls; nc ...'), on the project's non-root
// base (user 65532). Import it with Options.Images or Cluster.Import. Debian's static
// busybox cannot resolve names itself (its wget crashes in such an image, and its nc
// takes IP addresses): use nslookup, which asks the cluster's DNS directly.
func BusyboxImage(ctx context.Context) (string, error) {
	cache, err := imageCache()
	if err != nil {
		return "", err
	}
	busybox := filepath.Join(cache, "busybox-static", "bin", "busybox")
	if _, err := os.Stat(busybox); err != nil {
		return "", fmt.Errorf("no static busybox (%w): run hack/realnode/install-deps.sh (make realnode-deps)", err)
	}
	return imageBuild{
		name: "busybox", ref: BusyboxImageRef, inputs: []string{busybox},
		flags: []string{"--binary", busybox, "--path", "/bin/sh", "--entrypoint", `["/bin/sh"]`},
	}.archive(ctx)
}

// pauseImage is containerd's sandbox image, from hack/realnode/pause.
func pauseImage(ctx context.Context) (string, error) {
	root := framework.RepoRoot()
	src := filepath.Join(root, "hack", "realnode", "pause")
	sources, err := filepath.Glob(filepath.Join(src, "*.go"))
	if err != nil || len(sources) == 0 {
		return "", fmt.Errorf("no sources of the pause binary in %s", src)
	}
	cache, err := imageCache()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "bin", "pause")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./hack/realnode/pause")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	return imageBuild{
		name: "pause", ref: pauseImageRef, inputs: sources, flags: []string{"--binary", bin},
		prepare: func() error {
			if out, err := build.CombinedOutput(); err != nil {
				return fmt.Errorf("building the pause binary: %w: %s", err, out)
			}
			return nil
		},
	}.archive(ctx)
}

// corednsImage is the cluster DNS's image, from the slim CoreDNS that
// hack/build-kube-binaries.sh builds.
func corednsImage(ctx context.Context, binDir string) (string, error) {
	bin := filepath.Join(binDir, "coredns")
	return imageBuild{name: "coredns", ref: corednsImageRef, inputs: []string{bin}, flags: []string{"--binary", bin}}.archive(ctx)
}

// imageBuild is one hack/images.sh build, cached: its archive is rebuilt only when the
// inputs (files whose content is hashed), the image tool's sources or the flags change.
type imageBuild struct {
	name, ref string
	inputs    []string
	// flags are images.sh build's beyond --name and --out.
	flags []string
	// prepare makes what flags name from the inputs (a binary from its sources), and runs
	// only when the archive is stale.
	prepare func() error
}

// archive returns the archive's path, building it if needed. It is written aside and
// renamed into place, so a concurrent run never imports half an archive.
func (b imageBuild) archive(ctx context.Context) (string, error) {
	cache, err := imageCache()
	if err != nil {
		return "", err
	}
	root := framework.RepoRoot()
	tool, err := filesUnder(filepath.Join(root, "hack", "tools", "images"))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", b.ref, strings.Join(b.flags, "\x00"))
	for _, f := range append(b.inputs, tool...) {
		if err := hashFile(h, f); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(cache, "images")
	out := filepath.Join(dir, b.name+"-"+hex.EncodeToString(h.Sum(nil)[:8])+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	if b.prepare != nil {
		if err := b.prepare(); err != nil {
			return "", err
		}
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "images.sh"),
		append([]string{"build", "--name", b.ref, "--out", tmp}, b.flags...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("building image %s: %w: %s", b.ref, err, out)
	}
	// Older archives of this image are stale now.
	old, _ := filepath.Glob(filepath.Join(dir, b.name+"-*.tar"))
	for _, o := range old {
		os.Remove(o)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("renaming %s: %w", tmp, err)
	}
	return out, nil
}

// filesUnder lists the regular files below dir, sorted.
func filesUnder(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	sort.Strings(files)
	return files, nil
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("hashing an input of an image: %w", err)
	}
	defer f.Close()
	fmt.Fprintf(h, "%s\x00", path)
	_, err = io.Copy(h, f)
	return err
}

// Import loads image archives (OCI layouts written by hack/images.sh, or docker-archives)
// into the cluster's containerd, in the k8s.io namespace kubelet uses. An OCI archive's
// io.containerd.image.name annotation names the image; pods must use that reference
// with imagePullPolicy Never or IfNotPresent (never :latest, whose default policy is
// Always), since nothing can be pulled.
func (c *Cluster) Import(ctx context.Context, archives ...string) error {
	return importImages(ctx, c.containerdSocket(), archives...)
}

// ImportInto is Import for the cluster running in dir (hack/realnode import).
func ImportInto(ctx context.Context, dir string, archives ...string) error {
	return importImages(ctx, filepath.Join(dir, "containerd", "containerd.sock"), archives...)
}

func importImages(ctx context.Context, socket string, archives ...string) error {
	if _, err := os.Stat(socket); err != nil {
		return fmt.Errorf("no containerd at %s: is the cluster running? %w", socket, err)
	}
	var errs []error
	for _, a := range archives {
		cmd := exec.CommandContext(ctx, "ctr", "--address", socket, "--namespace", "k8s.io", "images", "import", a)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("importing %s: %w: %s", a, err, out))
		}
	}
	return errors.Join(errs...)
}
