package imagebuild

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"io/fs"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The unprivileged user every image runs as: the uid and gid of distroless' "nonroot", so
// that the Dockerfiles (FROM gcr.io/distroless/static-debian12:nonroot) and these images
// agree, and so do the charts' runAsUser/runAsGroup.
const (
	NonRootUID  = 65532
	NonRootUser = "65532:65532"
	NonRootHome = "/home/nonroot"
)

// CACertificatesPath is where Debian, distroless and Go's crypto/x509 (first in its list)
// look for the CA bundle.
const CACertificatesPath = "/etc/ssl/certs/ca-certificates.crt"

// DefaultPath is the PATH of every image, Debian's.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BaseFiles are the files of the base layer: what distroless/static carries that a static
// Go server needs, and nothing else (no shell, no package manager, no libc):
//   - /etc/passwd and /etc/group with root, nonroot (65532) and nobody, so that
//     os/user, ssh-style tools and "whoami" resolve the user the pod runs as;
//   - /etc/nsswitch.conf ("hosts: files dns"), which Go's resolver reads for the order;
//   - the CA bundle, so TLS to the platform, OIDC providers and SMTP verifies;
//   - /tmp (1777) and the nonroot home (0700, owned by nonroot).
//
// The CA bundle comes from golang.org/x/crypto/x509roots/fallback/bundle (Mozilla's NSS
// roots, pinned by this module's go.sum) rather than from the machine's
// /etc/ssl/certs: the machine's file changes with its ca-certificates package, which
// would make the digest depend on where the image was built.
func BaseFiles() ([]File, error) {
	ca, err := CABundle()
	if err != nil {
		return nil, err
	}
	dir := fs.ModeDir
	return []File{
		{Path: "/etc", Mode: dir | 0o755},
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(
			"root:x:0:\n" +
				"nobody:x:65534:\n" +
				"nonroot:x:65532:\n")},
		{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: []byte("hosts: files dns\n")},
		{Path: "/etc/ssl", Mode: dir | 0o755},
		{Path: "/etc/ssl/certs", Mode: dir | 0o755},
		{Path: CACertificatesPath, Mode: 0o644, Data: ca},
		{Path: "/home", Mode: dir | 0o755},
		{Path: NonRootHome, Mode: dir | 0o700, UID: NonRootUID, GID: NonRootUID},
		{Path: "/root", Mode: dir | 0o700},
		{Path: "/tmp", Mode: dir | fs.ModeSticky | 0o777},
	}, nil
}

// CABundle returns the PEM bundle of the pinned NSS roots. Roots that NSS constrains (a
// distrust-after date) are left out: a PEM file cannot carry the constraint, and trusting
// them without it would trust more than Go's own fallback roots do.
func CABundle() ([]byte, error) {
	var b bytes.Buffer
	n := 0
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, fmt.Errorf("encoding a CA certificate: %w", err)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("golang.org/x/crypto/x509roots/fallback/bundle holds no unconstrained root")
	}
	return b.Bytes(), nil
}
