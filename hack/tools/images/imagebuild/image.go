package imagebuild

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec describes one single-platform image: the base layer and one layer of Files.
type Spec struct {
	// Platform is the image's; only linux images are made.
	Platform v1.Platform
	// Files make the application layer: the binary, and anything the caller adds.
	Files []File
	// Entrypoint and Cmd as in the OCI image config.
	Entrypoint, Cmd []string
	// Env adds to PATH and SSL_CERT_FILE.
	Env []string
	// User defaults to NonRootUser, WorkingDir to NonRootHome.
	User, WorkingDir string
	// Labels go into the image config (org.opencontainers.image.*).
	Labels map[string]string
	// Created is every timestamp of the image (config, history, files): pass
	// SOURCE_DATE_EPOCH so that two builds of the same inputs are byte for byte equal.
	Created time.Time
}

// Image builds the image of s.
func Image(s Spec) (v1.Image, error) {
	if s.Platform.OS != "linux" || s.Platform.Architecture == "" {
		return nil, fmt.Errorf("platform %s: only linux/<arch> images are built", s.Platform.String())
	}
	created := s.Created.UTC().Truncate(time.Second)
	baseFiles, err := BaseFiles()
	if err != nil {
		return nil, err
	}
	base, err := Layer(baseFiles, created)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	app, err := Layer(s.Files, created)
	if err != nil {
		return nil, fmt.Errorf("application layer: %w", err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: v1.Time{Time: created}, CreatedBy: "imagebuild: base (passwd, group, CA certificates, nonroot home)",
		}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{
			Created: v1.Time{Time: created}, CreatedBy: "imagebuild: " + describe(s.Files),
		}})
	if err != nil {
		return nil, fmt.Errorf("appending layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = s.Platform.OS
	cf.Architecture = s.Platform.Architecture
	cf.Variant = s.Platform.Variant
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        append([]string{"PATH=" + DefaultPath, "SSL_CERT_FILE=" + CACertificatesPath}, s.Env...),
		User:       firstNonEmpty(s.User, NonRootUser),
		WorkingDir: firstNonEmpty(s.WorkingDir, NonRootHome),
		Labels:     s.Labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing the image config: %w", err)
	}
	return img, nil
}

// describe names the application layer's files in its history entry.
func describe(files []File) string {
	var names []string
	for _, f := range files {
		if !f.isDir() {
			names = append(names, f.Path)
		}
	}
	sort.Strings(names)
	return fmt.Sprint(names)
}

// Index gathers single-platform images into an OCI image index, each entry carrying its
// platform so that runtimes pick theirs. The order is the callers' (keep it fixed).
func Index(images ...v1.Image) (v1.ImageIndex, error) {
	if len(images) == 0 {
		return nil, errors.New("an index needs at least one image")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]bool{}
	for _, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading an image config: %w", err)
		}
		p := cf.Platform()
		if p == nil {
			return nil, errors.New("an image of the index has no platform")
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("two images for %s", p)
		}
		seen[p.String()] = true
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: p},
		})
	}
	return idx, nil
}

// BinarySpec is the Spec of the usual image: one static binary at
// /usr/local/bin/<its name> as the entrypoint, running as nonroot, for the binary's
// platform (read from its ELF header).
func BinarySpec(binary string, created time.Time) (Spec, error) {
	p, err := StaticBinaryPlatform(binary)
	if err != nil {
		return Spec{}, err
	}
	dest := path.Join("/usr/local/bin", path.Base(binary))
	return Spec{
		Platform:   p,
		Files:      []File{{Path: dest, Mode: 0o755, Source: binary}},
		Entrypoint: []string{dest},
		Created:    created,
	}, nil
}

// StaticBinaryPlatform reads a binary's ELF header and returns its platform. It refuses
// a dynamically linked binary (one with a program interpreter): the base has no libc or
// loader, so it would fail at exec with a confusing "no such file or directory".
func StaticBinaryPlatform(binary string) (v1.Platform, error) {
	f, err := elf.Open(binary)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("%s: not a linux binary: %w", binary, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return v1.Platform{}, fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0", binary)
		}
	}
	arch, ok := map[elf.Machine]string{
		elf.EM_X86_64:  "amd64",
		elf.EM_AARCH64: "arm64",
		elf.EM_386:     "386",
		elf.EM_ARM:     "arm",
		elf.EM_PPC64:   "ppc64le",
		elf.EM_S390:    "s390x",
		elf.EM_RISCV:   "riscv64",
	}[f.Machine]
	if !ok {
		return v1.Platform{}, fmt.Errorf("%s: unsupported ELF machine %s", binary, f.Machine)
	}
	return v1.Platform{OS: "linux", Architecture: arch}, nil
}

// SourceDateEpoch is the time in SOURCE_DATE_EPOCH (https://reproducible-builds.org), or
// the Unix epoch when it is unset: never the current time, which would change every digest.
func SourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	var secs int64
	if _, err := fmt.Sscan(v, &secs); err != nil || secs < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since the Unix epoch", v)
	}
	return time.Unix(secs, 0).UTC(), nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
