// Command images builds and pushes the project's OCI images without Docker (issue 14).
// Run it through hack/images.sh, which builds it from this pinned module and keeps the
// caller's working directory:
//
//	hack/images.sh release --registry ghcr.io/exo-in-go --tag v0.3.0 --platforms linux/amd64,linux/arm64
//	    static binaries of every shipped image, written as _output/images/<name>.tar
//	hack/images.sh build --binary ./_output/hello --name example.test/hello:dev --out hello.tar
//	    one image from static binaries (one --binary per platform; the platform is read
//	    from each ELF header), e.g. a test image to import into containerd
//	hack/images.sh push --registry registry.example.com/exo _output/images/*.tar
//	hack/images.sh inspect _output/images/exo-app.tar
//
// Every timestamp is SOURCE_DATE_EPOCH (the Unix epoch when unset), so two builds of the
// same binaries give the same digests.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/exo-in-go/exo/hack/tools/images/imagebuild"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

const usage = `usage: images <command> [flags]

commands:
  release   build every shipped image into OCI archives (make images)
  build     build one image from static binaries
  push      push archives to a registry (make push)
  inspect   print an archive's name, digest and platforms as JSON
`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "release":
		return release(ctx, args[1:])
	case "build":
		return build(args[1:])
	case "push":
		return push(ctx, args[1:])
	case "inspect":
		return inspect(args[1:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func release(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	root := fs.String("root", ".", "repository root")
	registry := fs.String("registry", imagebuild.DefaultRegistry, "registry (with path) the images are named under")
	tag := fs.String("tag", "", "tag of every image (the VERSION file when empty)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms of each image's index")
	out := fs.String("out", "_output/images", "folder of the archives")
	bin := fs.String("bin", "_output/images/bin", "folder of the static binaries")
	only := fs.String("only", "", "comma-separated repositories to build (default: every shipped image)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("release takes no arguments, got %q", fs.Args())
	}
	created, err := imagebuild.SourceDateEpoch()
	if err != nil {
		return err
	}
	if *tag == "" {
		v, err := os.ReadFile(filepath.Join(*root, "VERSION"))
		if err != nil {
			return fmt.Errorf("no --tag and no VERSION file: %w", err)
		}
		*tag = strings.TrimSpace(string(v))
	}
	var ps []v1.Platform
	for _, s := range strings.Split(*platforms, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("platform %q: %w", s, err)
		}
		ps = append(ps, *p)
	}
	var onlyList []string
	if *only != "" {
		onlyList = strings.Split(*only, ",")
	}
	_, err = imagebuild.Release(ctx, imagebuild.ReleaseOptions{
		Root: *root, Registry: *registry, Tag: *tag, Platforms: ps,
		OutDir: *out, BinDir: *bin, Only: onlyList, Created: created,
		Log: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	})
	return err
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	var binaries, adds, envs listFlag
	fs.Var(&binaries, "binary", "static linux binary (repeat for more platforms; each must have the same file name)")
	name := fs.String("name", "", "full reference the archive carries, e.g. example.test/hello:dev (required)")
	out := fs.String("out", "", "archive to write (required)")
	dest := fs.String("path", "", "path of the binary in the image (default /usr/local/bin/<its file name>)")
	entrypoint := fs.String("entrypoint", "", `entrypoint: a JSON array, or "" for the binary's path`)
	user := fs.String("user", imagebuild.NonRootUser, "user:group the image runs as")
	fs.Var(&adds, "add", "extra file SRC=DEST (repeatable; mode kept from SRC)")
	fs.Var(&envs, "env", "extra environment KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(binaries) == 0 || *name == "" || *out == "" {
		return errors.New("build needs --binary, --name and --out")
	}
	created, err := imagebuild.SourceDateEpoch()
	if err != nil {
		return err
	}
	var extra []imagebuild.File
	for _, a := range adds {
		src, dst, ok := strings.Cut(a, "=")
		if !ok || !path.IsAbs(dst) {
			return fmt.Errorf("--add %q: want SRC=/absolute/dest", a)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("--add %q: %w", a, err)
		}
		extra = append(extra, imagebuild.File{Path: dst, Mode: fi.Mode().Perm(), Source: src})
	}
	var imgs []v1.Image
	for _, b := range binaries {
		spec, err := imagebuild.BinarySpec(b, created)
		if err != nil {
			return err
		}
		if *dest != "" {
			spec.Files[0].Path, spec.Entrypoint = *dest, []string{*dest}
		}
		if *entrypoint != "" {
			spec.Entrypoint = nil
			if err := json.Unmarshal([]byte(*entrypoint), &spec.Entrypoint); err != nil {
				return fmt.Errorf("--entrypoint %q: want a JSON array of strings: %w", *entrypoint, err)
			}
		}
		spec.Files = append(spec.Files, extra...)
		spec.User, spec.Env = *user, envs
		img, err := imagebuild.Image(spec)
		if err != nil {
			return fmt.Errorf("image of %s: %w", b, err)
		}
		imgs = append(imgs, img)
	}
	var artifact imagebuild.Artifact = imgs[0]
	if len(imgs) > 1 {
		if artifact, err = imagebuild.Index(imgs...); err != nil {
			return err
		}
	}
	if err := imagebuild.WriteArchive(*out, *name, artifact, created); err != nil {
		return err
	}
	d, err := artifact.Digest()
	if err != nil {
		return fmt.Errorf("digest of %s: %w", *name, err)
	}
	fmt.Printf("%s %s %s\n", *out, *name, d)
	return nil
}

func push(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	registry := fs.String("registry", "", "registry (with path) to push to; empty keeps each archive's own name")
	tag := fs.String("tag", "", "tag to push; empty keeps each archive's own")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("push needs at least one archive")
	}
	for _, file := range fs.Args() {
		if err := pushOne(ctx, file, *registry, *tag); err != nil {
			return err
		}
	}
	return nil
}

func pushOne(ctx context.Context, file, registry, tag string) error {
	a, err := imagebuild.OpenArchive(file)
	if err != nil {
		return err
	}
	defer a.Close()
	target, err := imagebuild.PushTarget(a.Name, registry, tag)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := imagebuild.Push(ctx, a, target); err != nil {
		return err
	}
	d, err := a.Artifact.Digest()
	if err != nil {
		return fmt.Errorf("digest of %s: %w", file, err)
	}
	fmt.Printf("%s@%s\n", target, d)
	return nil
}

// inspected is what inspect prints.
type inspected struct {
	Name      string   `json:"name"`
	Digest    string   `json:"digest"`
	MediaType string   `json:"mediaType"`
	Platforms []string `json:"platforms"`
}

func inspect(args []string) error {
	if len(args) != 1 {
		return errors.New("inspect takes one archive")
	}
	a, err := imagebuild.OpenArchive(args[0])
	if err != nil {
		return err
	}
	defer a.Close()
	out := inspected{Name: a.Name, Digest: a.Descriptor.Digest.String(), MediaType: string(a.Descriptor.MediaType)}
	switch x := a.Artifact.(type) {
	case v1.ImageIndex:
		im, err := x.IndexManifest()
		if err != nil {
			return fmt.Errorf("reading the index of %s: %w", args[0], err)
		}
		for _, m := range im.Manifests {
			if m.Platform != nil {
				out.Platforms = append(out.Platforms, m.Platform.String())
			}
		}
	case v1.Image:
		if a.Descriptor.Platform != nil {
			out.Platforms = []string{a.Descriptor.Platform.String()}
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
