// Package imagebuild builds the project's OCI images without Docker: static Go binaries on
// a minimal non-root base layer made here (CA certificates, passwd and group entries), one
// image per platform, gathered in an image index and written as an OCI image-layout tar
// archive that containerd (`ctr images import`), kind (`kind load image-archive`), skopeo
// and crane read. Every timestamp is fixed (SOURCE_DATE_EPOCH), every list is sorted and
// gzip writes no name or time, so the same binaries give the same digests on any machine.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one entry of a layer: a regular file (Data, or the contents of Source) or, with
// fs.ModeDir in Mode, a directory.
type File struct {
	// Path is absolute, in the image.
	Path string
	// Mode holds the permission bits and, for a directory, fs.ModeDir.
	Mode     fs.FileMode
	UID, GID int
	// Data is the file's contents; when nil, Source is read.
	Data []byte
	// Source is a file on this machine to copy.
	Source string
}

func (f File) isDir() bool { return f.Mode&fs.ModeDir != 0 }

// Layer makes a gzip-compressed OCI layer of files, with every parent directory that files
// do not list (0755, root), sorted by path, and every timestamp set to mtime.
func Layer(files []File, mtime time.Time) (v1.Layer, error) {
	entries, err := withParents(files)
	if err != nil {
		return nil, err
	}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, f := range entries {
		// Layer paths are relative ("usr/local/bin/x"), as docker and buildkit write them.
		name := strings.TrimPrefix(f.Path, "/")
		hdr := &tar.Header{
			Name: name,
			Mode: int64(f.Mode.Perm() | tarModeBits(f.Mode)),
			Uid:  f.UID,
			Gid:  f.GID,
			// Whole seconds: the header then fits USTAR and carries no PAX time records.
			ModTime: mtime.Truncate(time.Second),
		}
		if f.isDir() {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, fmt.Errorf("writing %s to the layer: %w", f.Path, err)
			}
			continue
		}
		data := f.Data
		if data == nil {
			if data, err = os.ReadFile(f.Source); err != nil {
				return nil, fmt.Errorf("reading %s for %s: %w", f.Source, f.Path, err)
			}
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writing %s to the layer: %w", f.Path, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("writing %s to the layer: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the layer's tar: %w", err)
	}

	// compress/gzip is deterministic for one input and level; the header carries no name
	// and a zero time unless told otherwise.
	var gzBuf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gzBuf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("compressing the layer: %w", err)
	}
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return nil, fmt.Errorf("compressing the layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing the layer: %w", err)
	}
	compressed := gzBuf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("making the layer: %w", err)
	}
	return layer, nil
}

// tarModeBits maps Go's sticky, setuid and setgid bits to tar's.
func tarModeBits(m fs.FileMode) fs.FileMode {
	var bits fs.FileMode
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	return bits
}

// withParents validates files and returns them sorted by path, with the missing parent
// directories added: a runtime that unpacks "usr/local/bin/x" without "usr/local/bin/"
// creates the directory with its own mode and owner, which differs between runtimes.
func withParents(files []File) ([]File, error) {
	byPath := map[string]File{}
	for _, f := range files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, fmt.Errorf("image path %q: want a clean absolute path below /", f.Path)
		}
		if _, dup := byPath[f.Path]; dup {
			return nil, fmt.Errorf("image path %s listed twice", f.Path)
		}
		if !f.isDir() && f.Data == nil && f.Source == "" {
			return nil, fmt.Errorf("image path %s: no Data and no Source", f.Path)
		}
		byPath[f.Path] = f
	}
	for _, f := range files {
		for dir := path.Dir(f.Path); dir != "/"; dir = path.Dir(dir) {
			if p, ok := byPath[dir]; ok {
				if !p.isDir() {
					return nil, fmt.Errorf("image path %s: parent %s is a file", f.Path, dir)
				}
				continue
			}
			byPath[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
		}
	}
	out := make([]File, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
