package imagebuild

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// repoRoot is the repository root, three levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "images")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// dockerfile is what the final stage of a Dockerfile says about the image.
type dockerfile struct {
	base       string
	entrypoint []string
	user       string
	// copies are the destinations of COPY in the final stage.
	copies []string
	// buildOutputs maps `go build -o /out/<name> <package>` outputs to packages, from any stage.
	buildOutputs map[string]string
	// buildLine is the go build instruction, for the flag checks.
	buildLine string
}

// parseDockerfile reads the instructions this project's Dockerfiles use (line
// continuations joined, comments skipped). ENTRYPOINT must be in exec form: the shell
// form would need a /bin/sh the image does not have.
func parseDockerfile(path string) (dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return dockerfile{}, err
	}
	defer f.Close()
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return dockerfile{}, err
	}
	d := dockerfile{buildOutputs: map[string]string{}}
	goBuild := regexp.MustCompile(`go build .*-o /out/(\S+) (\S+)`)
	for _, line := range lines {
		instr, args, _ := strings.Cut(line, " ")
		args = strings.TrimSpace(args)
		switch strings.ToUpper(instr) {
		case "FROM":
			// A new stage: only the last one is the image.
			fields := strings.Fields(args)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				fields = fields[1:]
			}
			if len(fields) == 0 {
				return d, fmt.Errorf("FROM without an image: %q", line)
			}
			d.base, d.entrypoint, d.user, d.copies = fields[0], nil, "", nil
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(args), &d.entrypoint); err != nil {
				return d, fmt.Errorf("ENTRYPOINT %s: want the exec form (a JSON array): %w", args, err)
			}
		case "USER":
			d.user = args
		case "COPY":
			fields := strings.Fields(args)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				fields = fields[1:]
			}
			if len(fields) < 2 {
				return d, fmt.Errorf("COPY without a destination: %q", line)
			}
			d.copies = append(d.copies, fields[len(fields)-1])
		case "RUN":
			if m := goBuild.FindStringSubmatch(args); m != nil {
				d.buildOutputs["/out/"+m[1]] = m[2]
				d.buildLine = args
			}
		}
	}
	return d, nil
}

// distrolessBases lists what the Dockerfiles' base images provide that the OCI build must
// provide too: their user, working directory and files (GoogleContainerTools/distroless,
// base/static: passwd with nonroot, CA certificates, /tmp, the nonroot home).
var distrolessBases = map[string]struct {
	user, workingDir string
	files            []string
}{
	"gcr.io/distroless/static-debian12:nonroot": {
		user: "65532", workingDir: "/home/nonroot",
		files: []string{"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", CACertificatesPath, "/tmp", "/home/nonroot"},
	},
}

// TestDockerfilesMatchOCIBuild: each shipped image's Dockerfile and the image make images
// builds describe the same entrypoint, user, working directory and files, from the same
// package built with the same static flags; and every images/*/Dockerfile is a shipped
// image. A Dockerfile edited alone (or ShippedImages alone) fails here.
func TestDockerfilesMatchOCIBuild(t *testing.T) {
	root := repoRoot(t)
	found, err := filepath.Glob(filepath.Join(root, "images", "*", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var shipped, onDisk []string
	for _, s := range ShippedImages {
		shipped = append(shipped, s.Dockerfile)
	}
	for _, f := range found {
		rel, _ := filepath.Rel(root, f)
		onDisk = append(onDisk, filepath.ToSlash(rel))
	}
	sort.Strings(shipped)
	sort.Strings(onDisk)
	if !slices.Equal(shipped, onDisk) {
		t.Errorf("Dockerfiles %v, shipped images %v: add the image to ShippedImages or remove the Dockerfile", onDisk, shipped)
	}

	for _, s := range ShippedImages {
		t.Run(s.Repository, func(t *testing.T) {
			df, err := parseDockerfile(filepath.Join(root, s.Dockerfile))
			if err != nil {
				t.Fatal(err)
			}
			base, ok := distrolessBases[df.base]
			if !ok {
				t.Fatalf("%s: base %s is not one the OCI build knows; add it to distrolessBases with what it carries", s.Dockerfile, df.base)
			}
			idx, err := s.Index([]string{stubBinary(t, amd64, s.Binary())}, "v1", time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			img := onlyImage(t, idx)
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}

			if !slices.Equal(df.entrypoint, cf.Config.Entrypoint) {
				t.Errorf("entrypoint: Dockerfile %q, OCI build %q", df.entrypoint, cf.Config.Entrypoint)
			}
			user := firstNonEmpty(df.user, base.user)
			if user != cf.Config.User {
				t.Errorf("user: Dockerfile %q, OCI build %q", user, cf.Config.User)
			}
			if base.workingDir != cf.Config.WorkingDir {
				t.Errorf("working directory: Dockerfile (from %s) %q, OCI build %q", df.base, base.workingDir, cf.Config.WorkingDir)
			}

			files := imageFiles(t, img)
			has := func(p string) bool {
				_, ok := files[strings.TrimPrefix(p, "/")]
				return ok
			}
			for _, dst := range df.copies {
				if !has(dst) {
					t.Errorf("Dockerfile copies to %s; the OCI build has no such file", dst)
				}
			}
			for _, p := range base.files {
				if !has(p) {
					t.Errorf("%s carries %s; the OCI build's base does not", df.base, p)
				}
			}
			// Every file the OCI build adds on top of its base is one the Dockerfile copies.
			for _, p := range appFiles(t, img) {
				if !slices.Contains(df.copies, p) {
					t.Errorf("the OCI build adds %s; the Dockerfile copies %v", p, df.copies)
				}
			}

			// Same program, same static build.
			if pkg := df.buildOutputs["/out/"+s.Binary()]; pkg != s.Package {
				t.Errorf("Dockerfile builds /out/%s from %q, make images from %q", s.Binary(), pkg, s.Package)
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`} {
				if !strings.Contains(df.buildLine, want) {
					t.Errorf("Dockerfile go build lacks %s: %s", want, df.buildLine)
				}
			}
		})
	}
}

// onlyImage returns the single image of a one-platform index.
func onlyImage(t *testing.T, idx v1.ImageIndex) v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// appFiles lists the regular files of img's last layer (the one on top of the base).
func appFiles(t *testing.T, img v1.Image) []string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	top := layers[len(layers)-1]
	rc, err := top.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	for name, f := range tarEntries(t, rc) {
		if !f.hdr.FileInfo().IsDir() {
			out = append(out, "/"+name)
		}
	}
	sort.Strings(out)
	return out
}
