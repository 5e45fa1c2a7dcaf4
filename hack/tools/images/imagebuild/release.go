package imagebuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultRegistry is where the project publishes its images: under its own name, never
// another vendor's. pkg/runtimes.DefaultRegistry and the charts' image.registry say the same.
const DefaultRegistry = "ghcr.io/exo-in-go"

// Shipped is one image this project ships.
type Shipped struct {
	// Repository is the image's name under the registry.
	Repository string
	// Package is the Go main package, relative to the repository root.
	Package string
	// Dockerfile builds the same image with Docker, relative to the repository root.
	Dockerfile string
}

// Binary is the name of the command the package builds, and of the file in the image.
func (s Shipped) Binary() string { return path.Base(s.Package) }

// ImagePath is where the binary lives in the image; it is also the entrypoint.
func (s Shipped) ImagePath() string { return "/usr/local/bin/" + s.Binary() }

// ShippedImages are the images `make images` builds. localnode is not among them: it is a
// development node that runs pods as processes of the host it runs on, so it has no use
// in a container. The agentlet's repository is agentkube-agentlet, the name the manager
// launches (pkg/runtimes.Agentlet).
var ShippedImages = []Shipped{
	{Repository: "agentkube-manager", Package: "./cmd/agentkube-manager", Dockerfile: "images/agentkube-manager/Dockerfile"},
	{Repository: "agentkube-agentlet", Package: "./cmd/agentlet", Dockerfile: "images/agentlet/Dockerfile"},
	{Repository: "exo-app", Package: "./cmd/exo-app", Dockerfile: "images/exo-app/Dockerfile"},
}

// ReleaseOptions configure Release.
type ReleaseOptions struct {
	// Root is the repository root (where go.mod of github.com/exo-in-go/exo is).
	Root string
	// Registry and Tag name the images: <Registry>/<Repository>:<Tag>.
	Registry, Tag string
	// Platforms to build, in the index's order.
	Platforms []v1.Platform
	// OutDir receives <Repository>.tar for each image; BinDir the binaries
	// (<BinDir>/<os>_<arch>/<binary>).
	OutDir, BinDir string
	// Only restricts the build to these repositories; empty builds every shipped image.
	Only []string
	// Created is every timestamp (SOURCE_DATE_EPOCH).
	Created time.Time
	// Log receives one line per step; nil discards them.
	Log func(format string, args ...any)
}

// Result is one written archive.
type Result struct {
	Name, Archive string
	Digest        v1.Hash
}

// Release builds the shipped images: static binaries for every platform (one go build per
// platform for all packages, so shared packages compile once), then one index per image,
// written as <OutDir>/<Repository>.tar.
func Release(ctx context.Context, o ReleaseOptions) ([]Result, error) {
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	images, err := selectImages(o.Only)
	if err != nil {
		return nil, err
	}
	if len(o.Platforms) == 0 {
		return nil, fmt.Errorf("no platform to build")
	}
	var pkgs []string
	for _, s := range images {
		pkgs = append(pkgs, s.Package)
	}
	perPlatform := map[string]string{}
	for _, p := range o.Platforms {
		dir := filepath.Join(o.BinDir, p.OS+"_"+p.Architecture)
		logf("building %s for %s", strings.Join(pkgs, " "), p.String())
		if err := GoBuild(ctx, o.Root, dir, p, pkgs...); err != nil {
			return nil, err
		}
		perPlatform[p.String()] = dir
	}
	var results []Result
	for _, s := range images {
		binaries := make([]string, 0, len(o.Platforms))
		for _, p := range o.Platforms {
			binaries = append(binaries, filepath.Join(perPlatform[p.String()], s.Binary()))
		}
		idx, err := s.Index(binaries, o.Tag, o.Created)
		if err != nil {
			return nil, err
		}
		ref := strings.TrimSuffix(o.Registry, "/") + "/" + s.Repository + ":" + o.Tag
		out := filepath.Join(o.OutDir, s.Repository+".tar")
		if err := WriteArchive(out, ref, idx, o.Created); err != nil {
			return nil, err
		}
		d, err := idx.Digest()
		if err != nil {
			return nil, fmt.Errorf("digest of %s: %w", ref, err)
		}
		logf("%s %s %s", out, ref, d)
		results = append(results, Result{Name: ref, Archive: out, Digest: d})
	}
	return results, nil
}

// Index builds the image index of s from its binaries, one per platform (read from each
// ELF header), in the given order. make images and the Dockerfile consistency test both
// build through here.
func (s Shipped) Index(binaries []string, version string, created time.Time) (v1.ImageIndex, error) {
	var imgs []v1.Image
	for _, bin := range binaries {
		if filepath.Base(bin) != s.Binary() {
			return nil, fmt.Errorf("image %s: binary %s is not named %s", s.Repository, bin, s.Binary())
		}
		spec, err := BinarySpec(bin, created)
		if err != nil {
			return nil, err
		}
		spec.Labels = map[string]string{
			"org.opencontainers.image.title":    s.Repository,
			"org.opencontainers.image.source":   "https://github.com/exo-in-go/exo",
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.licenses": "Apache-2.0",
		}
		img, err := Image(spec)
		if err != nil {
			return nil, fmt.Errorf("image %s for %s: %w", s.Repository, spec.Platform.String(), err)
		}
		imgs = append(imgs, img)
	}
	idx, err := Index(imgs...)
	if err != nil {
		return nil, fmt.Errorf("index of %s: %w", s.Repository, err)
	}
	return idx, nil
}

func selectImages(only []string) ([]Shipped, error) {
	if len(only) == 0 {
		return ShippedImages, nil
	}
	var out []Shipped
	for _, name := range only {
		found := false
		for _, s := range ShippedImages {
			if s.Repository == name {
				out, found = append(out, s), true
			}
		}
		if !found {
			return nil, fmt.Errorf("%q is not a shipped image", name)
		}
	}
	return out, nil
}

// GoBuild builds static binaries of pkgs (main packages, relative to root) for p into
// outDir, the way the Dockerfiles do (CGO_ENABLED=0, -trimpath, -ldflags "-s -w") plus
// -buildvcs=false, so the binary depends on the sources and the toolchain only, not on
// the checkout's git state.
func GoBuild(ctx context.Context, root, outDir string, p v1.Platform, pkgs ...string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", outDir, err)
	}
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", outDir + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Variant != "" && p.Architecture == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (GOOS=%s GOARCH=%s): %w\n%s", strings.Join(args, " "), p.OS, p.Architecture, err, stderr.String())
	}
	return nil
}
