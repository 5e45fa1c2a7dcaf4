package imagebuild

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

// stubs are tiny static binaries built once per test binary with GoBuild (so the build
// path of make images is exercised too), one folder per platform.
var stubs struct {
	once sync.Once
	dirs map[string]string
	err  error
}

// stubBinary returns a static binary for p named name: a copy of the stub, so that the
// images get the file names the real ones have without compiling the real commands.
func stubBinary(t *testing.T, p v1.Platform, name string) string {
	t.Helper()
	stubs.once.Do(func() {
		root, err := os.MkdirTemp("", "imagebuild-stub-")
		if err != nil {
			stubs.err = err
			return
		}
		src := "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"stub\\n\") }\n"
		if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module stub\n\ngo 1.26\n"), 0o644); err != nil {
			stubs.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(root, "main.go"), []byte(src), 0o644); err != nil {
			stubs.err = err
			return
		}
		stubs.dirs = map[string]string{}
		for _, p := range []v1.Platform{amd64, arm64} {
			dir := filepath.Join(root, p.Architecture)
			if err := GoBuild(t.Context(), root, dir, p, "."); err != nil {
				stubs.err = err
				return
			}
			stubs.dirs[p.String()] = dir
		}
	})
	if stubs.err != nil {
		t.Fatal(stubs.err)
	}
	data, err := os.ReadFile(filepath.Join(stubs.dirs[p.String()], "stub"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), p.Architecture, name)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

func digest(t *testing.T, a interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := a.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReproducible: the same binaries and SOURCE_DATE_EPOCH give the same index digest and
// a byte-identical archive, built twice from scratch; another time gives another digest
// (so the time does reach the image and the equality is not vacuous).
func TestReproducible(t *testing.T) {
	s := ShippedImages[0]
	bins := []string{stubBinary(t, amd64, s.Binary()), stubBinary(t, arm64, s.Binary())}
	created := time.Unix(1700000000, 0)
	dir := t.TempDir()
	var digests []v1.Hash
	var archives [][]byte
	for i := range 2 {
		idx, err := s.Index(bins, "v0.0.0-test", created)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, digest(t, idx))
		out := filepath.Join(dir, fmt.Sprintf("build%d.tar", i))
		if err := WriteArchive(out, DefaultRegistry+"/"+s.Repository+":v0.0.0-test", idx, created); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		archives = append(archives, data)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds, two index digests: %s, %s", digests[0], digests[1])
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Error("two builds, two different archives")
	}
	later, err := s.Index(bins, "v0.0.0-test", created.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, later) == digests[0] {
		t.Error("another SOURCE_DATE_EPOCH gave the same digest")
	}
	t.Logf("index digest %s", digests[0])
}

// TestArchiveRoundTrip: the archive opens to the same index with containerd's name
// annotation, and each platform's image runs the binary as nonroot.
func TestArchiveRoundTrip(t *testing.T) {
	s := ShippedImages[0]
	bins := []string{stubBinary(t, amd64, s.Binary()), stubBinary(t, arm64, s.Binary())}
	idx, err := s.Index(bins, "v1", time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.tar")
	ref := "example.test/exo/" + s.Repository + ":v1"
	if err := WriteArchive(out, ref, idx, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	a, err := OpenArchive(out)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Name != ref || a.Descriptor.Annotations[AnnotationRefName] != "v1" {
		t.Errorf("annotations: %v", a.Descriptor.Annotations)
	}
	if got, want := digest(t, a.Artifact), digest(t, idx); got != want {
		t.Errorf("reopened digest %s, built %s", got, want)
	}
	got, ok := a.Artifact.(v1.ImageIndex)
	if !ok {
		t.Fatalf("archive holds %T, want an index", a.Artifact)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.String())
		img, err := got.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != NonRootUser || strings.Join(cf.Config.Entrypoint, " ") != s.ImagePath() {
			t.Errorf("%s: user %q entrypoint %q", m.Platform, cf.Config.User, cf.Config.Entrypoint)
		}
		if cf.Architecture != m.Platform.Architecture {
			t.Errorf("index says %s, config says %s", m.Platform.Architecture, cf.Architecture)
		}
	}
	if strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("platforms %v", platforms)
	}
}

// TestBaseLayer: passwd and group resolve nonroot, the CA bundle parses and is not empty,
// /tmp is sticky and world-writable, the home belongs to nonroot.
func TestBaseLayer(t *testing.T) {
	spec, err := BinarySpec(stubBinary(t, amd64, "hello"), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	img, err := Image(spec)
	if err != nil {
		t.Fatal(err)
	}
	files := imageFiles(t, img)
	if !strings.Contains(string(files["etc/passwd"].data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd: %q", files["etc/passwd"].data)
	}
	if !strings.Contains(string(files["etc/group"].data), "nonroot:x:65532:") {
		t.Errorf("/etc/group: %q", files["etc/group"].data)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"].data) {
		t.Error("the CA bundle holds no certificate")
	}
	n := 0
	for rest := files["etc/ssl/certs/ca-certificates.crt"].data; ; n++ {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			t.Errorf("CA bundle certificate %d: %v", n, err)
		}
	}
	if n < 100 {
		t.Errorf("CA bundle: %d certificates, want the NSS set (more than 100)", n)
	}
	if h := files["tmp"].hdr; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp: %+v", h)
	}
	if h := files["home/nonroot"].hdr; h == nil || h.Uid != NonRootUID || h.Gid != NonRootUID || h.Mode&0o777 != 0o700 {
		t.Errorf("/home/nonroot: %+v", h)
	}
	if h := files["usr/local/bin/hello"].hdr; h == nil || h.Mode&0o777 != 0o755 || h.Uid != 0 {
		t.Errorf("/usr/local/bin/hello: %+v", h)
	}
	for p, f := range files {
		if !f.hdr.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %s, want SOURCE_DATE_EPOCH", p, f.hdr.ModTime)
		}
	}
}

// TestStaticBinaryPlatform: ELF machines map to platforms, and a dynamically linked
// binary (which would fail on the libc-less base) is refused.
func TestStaticBinaryPlatform(t *testing.T) {
	for _, p := range []v1.Platform{amd64, arm64} {
		got, err := StaticBinaryPlatform(stubBinary(t, p, "x"))
		if err != nil || got.String() != p.String() {
			t.Errorf("%s: got %s, %v", p, got.String(), err)
		}
	}
	// /bin/sh is dynamically linked on every Debian machine this runs on.
	if _, err := StaticBinaryPlatform("/bin/sh"); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("/bin/sh (dynamically linked on Debian): %v", err)
	}
	if _, err := StaticBinaryPlatform(filepath.Join("testdata", "missing")); err == nil {
		t.Error("a missing file has a platform")
	}
}

// TestPushAndPull pushes an archive to an in-memory registry the way make push does and
// pulls it back: same index digest, same image per platform, same layers.
func TestPushAndPull(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	s := ShippedImages[0]
	idx, err := s.Index([]string{stubBinary(t, amd64, s.Binary()), stubBinary(t, arm64, s.Binary())}, "v1", time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), s.Repository+".tar")
	if err := WriteArchive(file, DefaultRegistry+"/"+s.Repository+":v1", idx, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	a, err := OpenArchive(file)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	target, err := PushTarget(a.Name, u.Host+"/mirror/exo", "v1-pushed")
	if err != nil {
		t.Fatal(err)
	}
	if want := u.Host + "/mirror/exo/" + s.Repository + ":v1-pushed"; target.String() != want {
		t.Errorf("push target %s, want %s", target, want)
	}
	if err := Push(t.Context(), a, target); err != nil {
		t.Fatal(err)
	}

	pulled, err := remote.Index(target, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digest(t, pulled), digest(t, idx); got != want {
		t.Fatalf("pulled index %s, pushed %s", got, want)
	}
	for _, p := range []v1.Platform{amd64, arm64} {
		img, err := remote.Image(target, remote.WithContext(t.Context()), remote.WithPlatform(p))
		if err != nil {
			t.Fatalf("pulling %s: %v", p, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != p.Architecture || cf.Config.User != NonRootUser {
			t.Errorf("%s: architecture %s user %s", p, cf.Architecture, cf.Config.User)
		}
		if files := imageFiles(t, img); files[strings.TrimPrefix(s.ImagePath(), "/")].hdr == nil {
			t.Errorf("%s: pulled image lacks %s", p, s.ImagePath())
		}
	}

	// Pushing by the archive's own name keeps it; a bad registry is refused before any I/O.
	if same, err := PushTarget(a.Name, "", ""); err != nil || same.String() != a.Name {
		t.Errorf("PushTarget(own name) = %s, %v", same, err)
	}
	if _, err := PushTarget(a.Name, "UPPER/Case", ""); err == nil {
		t.Error("an invalid registry was accepted")
	}
}

// tarFile is one entry of an image's flattened file system.
type tarFile struct {
	hdr  *tar.Header
	data []byte
}

// imageFiles flattens img's layers into path (relative, no trailing slash) → entry.
func imageFiles(t *testing.T, img v1.Image) map[string]tarFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	return tarEntries(t, rc)
}

// tarEntries reads every entry of a tar stream.
func tarEntries(t *testing.T, r io.Reader) map[string]tarFile {
	t.Helper()
	tr := tar.NewReader(r)
	files := map[string]tarFile{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		// Writers differ on "dir/" versus "dir"; the type says which it is.
		files[strings.TrimSuffix(hdr.Name, "/")] = tarFile{hdr: hdr, data: data}
	}
}
