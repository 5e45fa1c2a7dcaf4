//go:build linux

package localnode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// ImageMap says which host binary stands in for each container image. The
// first mapping whose pattern matches the image wins.
type ImageMap struct {
	Images []ImageMapping `json:"images"`
}

// ImageMapping maps the images matching a pattern to a host binary.
//
// The container's argv follows Kubernetes' rules for entrypoint and command:
//   - neither command nor args: Binary followed by Args (the image's CMD);
//   - args only: Binary followed by the container's args;
//   - command: the container's command and args, with command[0] looked up in
//     Commands (paths inside the image → host paths), else taken as a host
//     path or looked up in the container's PATH.
type ImageMapping struct {
	// Image is a pattern: '*' matches any run of characters (including '/' and
	// ':'), '?' any one character; anything else matches itself.
	Image string `json:"image"`
	// Binary is the host path of the image's entrypoint. It may be empty for
	// images whose containers always set command (a "shell" image).
	Binary string `json:"binary,omitempty"`
	// Args are the image's default arguments (CMD).
	Args []string `json:"args,omitempty"`
	// Commands maps executables inside the image to host paths, for containers
	// that set command and for kubectl exec.
	Commands map[string]string `json:"commands,omitempty"`
	// Env is added after the container's own environment and wins over it.
	// Values may refer to other variables as $(NAME), including
	// LOCALNODE_POD_IP; for example AGENTLET_LISTEN_ADDRESS:
	// "$(LOCALNODE_POD_IP):8090" makes a server that would listen on every
	// interface listen on its pod IP only.
	Env map[string]string `json:"env,omitempty"`
	// InheritEnv names variables of localnode's own environment passed through
	// to the container (for example HOME or an API key for a real CLI).
	InheritEnv []string `json:"inheritEnv,omitempty"`
}

// Lookup returns the mapping for image.
func (m ImageMap) Lookup(image string) (ImageMapping, bool) {
	for _, e := range m.Images {
		if globMatch(e.Image, image) {
			return e, true
		}
	}
	return ImageMapping{}, false
}

// Validate checks patterns and binaries.
func (m ImageMap) Validate() error {
	for i, e := range m.Images {
		if e.Image == "" {
			return fmt.Errorf("image map entry %d: empty image pattern", i)
		}
		if e.Binary != "" {
			if !filepath.IsAbs(e.Binary) {
				return fmt.Errorf("image map entry %q: binary %q is not an absolute path", e.Image, e.Binary)
			}
			if err := executable(e.Binary); err != nil {
				return fmt.Errorf("image map entry %q: %w", e.Image, err)
			}
		}
		for in, host := range e.Commands {
			if !filepath.IsAbs(host) {
				return fmt.Errorf("image map entry %q: command %q maps to %q, which is not an absolute path", e.Image, in, host)
			}
		}
	}
	return nil
}

func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// ParseImageMap reads a YAML or JSON image map:
//
//	images:
//	- image: "*agentkube-agentlet*"
//	  binary: /home/me/bin/agentlet
//	  env: {AGENTLET_LISTEN_ADDRESS: "$(LOCALNODE_POD_IP):8090"}
//	- image: "*"
//	  binary: /bin/sleep
//	  args: [infinity]
func ParseImageMap(data []byte) (ImageMap, error) {
	var m ImageMap
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return ImageMap{}, fmt.Errorf("parsing image map: %w", err)
	}
	return m, nil
}

// LoadImageMap reads an image map file.
func LoadImageMap(path string) (ImageMap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ImageMap{}, err
	}
	m, err := ParseImageMap(data)
	if err != nil {
		return ImageMap{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ParseImageFlag reads the short form PATTERN=BINARY [ARG...] of one mapping
// (the --image flag; arguments split on spaces).
func ParseImageFlag(s string) (ImageMapping, error) {
	pattern, rest, ok := strings.Cut(s, "=")
	if !ok || pattern == "" || strings.TrimSpace(rest) == "" {
		return ImageMapping{}, fmt.Errorf("image mapping %q: want PATTERN=BINARY [ARG...]", s)
	}
	f := strings.Fields(rest)
	return ImageMapping{Image: pattern, Binary: f[0], Args: f[1:]}, nil
}

// globMatch matches name against pattern where '*' matches any run of
// characters and '?' any single character.
func globMatch(pattern, name string) bool {
	p, n := 0, 0
	star, match := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case p < len(pattern) && pattern[p] == '*':
			star, match = p, n
			p++
		case star >= 0:
			p = star + 1
			match++
			n = match
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
