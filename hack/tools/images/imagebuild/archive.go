package imagebuild

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations of the archive's index.json entry. containerd names an imported image after
// io.containerd.image.name (the full reference); the OCI spec's ref.name holds the tag, as
// buildx's OCI exporter writes them.
const (
	AnnotationContainerdName = "io.containerd.image.name"
	AnnotationRefName        = "org.opencontainers.image.ref.name"
)

// Artifact is what an archive holds: a v1.Image or a v1.ImageIndex.
type Artifact = mutate.Appendable

// WriteArchive writes artifact as an OCI image-layout tar archive at out, named ref (a full
// reference with a tag, e.g. ghcr.io/exo-in-go/agentkube-manager:v0.3.0). The tar lists its
// entries sorted, with mtime as every time and root as owner, so the archive is as
// reproducible as the image. out is replaced atomically.
func WriteArchive(out, ref string, artifact Artifact, mtime time.Time) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image name %q: want registry/repository:tag: %w", ref, err)
	}
	desc := v1.Descriptor{Annotations: map[string]string{
		AnnotationContainerdName: tag.String(),
		AnnotationRefName:        tag.TagStr(),
	}}
	switch a := artifact.(type) {
	case v1.ImageIndex:
	case v1.Image:
		if cf, err := a.ConfigFile(); err == nil {
			desc.Platform = cf.Platform()
		}
	default:
		return fmt.Errorf("%T is neither an image nor an index", artifact)
	}
	top := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: artifact, Descriptor: desc})

	dir, err := os.MkdirTemp("", "imagebuild-layout-")
	if err != nil {
		return fmt.Errorf("making a layout folder: %w", err)
	}
	defer os.RemoveAll(dir)
	if _, err := layout.Write(dir, top); err != nil {
		return fmt.Errorf("writing the OCI layout of %s: %w", ref, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("making the folder of %s: %w", out, err)
	}
	tmp := out + ".tmp"
	if err := tarFolder(dir, tmp, mtime); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// tarFolder writes every file under dir into a tar at out, sorted, with fixed metadata.
func tarFolder(dir, out string, mtime time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range paths {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime.Truncate(time.Second), Mode: 0o644}
		if fi.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// Archive is an opened OCI image-layout archive: its one named entry, readable until Close.
type Archive struct {
	// Name is the full reference the archive was written with.
	Name string
	// Descriptor is the index.json entry.
	Descriptor v1.Descriptor
	// Artifact is the entry: a v1.ImageIndex or a v1.Image.
	Artifact Artifact
	dir      string
}

// Close removes the unpacked archive.
func (a *Archive) Close() error { return os.RemoveAll(a.dir) }

// OpenArchive unpacks an archive written by WriteArchive (or any OCI layout tar with one
// entry in index.json) into a temporary folder and opens its entry.
func OpenArchive(file string) (*Archive, error) {
	dir, err := os.MkdirTemp("", "imagebuild-open-")
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", file, err)
	}
	a, err := openArchive(file, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("opening %s: %w", file, err)
	}
	return a, nil
}

func openArchive(file, dir string) (*Archive, error) {
	if err := untar(file, dir); err != nil {
		return nil, err
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("not an OCI layout: %w", err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(im.Manifests) != 1 {
		return nil, fmt.Errorf("index.json lists %d entries, want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	a := &Archive{Name: desc.Annotations[AnnotationContainerdName], Descriptor: desc, dir: dir}
	switch desc.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		a.Artifact, err = top.ImageIndex(desc.Digest)
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		a.Artifact, err = top.Image(desc.Digest)
	default:
		err = fmt.Errorf("entry of media type %s is neither an image nor an index", desc.MediaType)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// untar unpacks regular files and folders of file into dir, refusing any path that would
// leave dir (an archive is input: a "../" entry must not write elsewhere).
func untar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the tar: %w", err)
		}
		clean := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if clean == "." {
			continue
		}
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("entry %q leaves the archive", hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(clean))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: unsupported type %c", hdr.Name, hdr.Typeflag)
		}
	}
}
