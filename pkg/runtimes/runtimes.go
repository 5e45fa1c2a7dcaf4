// Package runtimes is the runtime image matrix: for every Agent runtime the
// default image, the variable that overrides it, and the environment variable
// the runtime CLI reads its API token from; plus the other images the manager
// launches (agentlet, bastions, MCP proxy, LLM gateway, Claw hosts).
//
// Image resolution follows the product's three levers, most specific first:
// the object's own spec.image, then AGENTKUBE_IMAGE_<COMPONENT>, then the
// default name under the registry (AGENTKUBE_IMAGE_REGISTRY, by default the
// project's own ghcr.io/exo-in-go, or a mirror of it).
package runtimes

import (
	"fmt"
	"sort"
	"strings"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

// Environment variables that configure images.
const (
	// EnvRegistry is the registry (and path) every default image is pulled
	// from, for example registry.example.com/mirror/exo-in-go.
	EnvRegistry = "AGENTKUBE_IMAGE_REGISTRY"
	// EnvImagePrefix prefixes the per-component override variables.
	EnvImagePrefix = "AGENTKUBE_IMAGE_"
	// EnvImageTag is the tag of every default image that has no override.
	EnvImageTag = "AGENTKUBE_IMAGE_TAG"
)

// DefaultRegistry is where this project publishes its images (make push): under
// its own name, so that a default install never pulls another vendor's binaries.
// The charts' image.registry and hack/tools/images say the same.
const DefaultRegistry = "ghcr.io/exo-in-go"

// DefaultTag pins the default images to one release, so an Agent pod never
// changes under a running manager because "latest" moved. It is the VERSION
// file's, the tag make images gives every image (a test keeps them equal).
const DefaultTag = "v0.3.0"

// Component is something the manager runs from an image.
type Component struct {
	// Key names the override variable: AGENTKUBE_IMAGE_<Key>.
	Key string
	// Image is the default image name under the registry.
	Image string
}

// OverrideEnv is the variable that overrides the component's image.
func (c Component) OverrideEnv() string { return EnvImagePrefix + c.Key }

// Components the manager launches besides the agent runtimes.
var (
	Agentlet        = Component{Key: "AGENTLET", Image: "agentkube-agentlet"}
	SessionRecorder = Component{Key: "SESSION_RECORDER", Image: "agentkube-session-recorder"}
	Bastion         = Component{Key: "BASTION", Image: "agentkube-bastion"}
	MCPProxy        = Component{Key: "MCP_PROXY", Image: "agentkube-mcp-proxy"}
	LLMGateway      = Component{Key: "LLM_GATEWAY", Image: "agentkube-llm-gateway"}
	OpenClaw        = Component{Key: "OPENCLAW", Image: "openclaw"}
	NanoClaw        = Component{Key: "NANOCLAW", Image: "nanoclaw"}
	Manager         = Component{Key: "MANAGER", Image: "agentkube-manager"}
)

// Runtime is one row of the runtime matrix.
type Runtime struct {
	Name agentkubev1alpha1.Runtime
	// Component is the runtime's image; empty Image for Custom.
	Component Component
	// TokenEnv is the variable the runtime CLI reads its API key from; empty
	// for Custom, whose token variable is not known.
	TokenEnv string
}

// Matrix is the runtime image matrix of the product documentation.
var Matrix = map[agentkubev1alpha1.Runtime]Runtime{
	agentkubev1alpha1.RuntimeClaudeCode: {agentkubev1alpha1.RuntimeClaudeCode, Component{"CLAUDECODE", "claudecode"}, "ANTHROPIC_API_KEY"},
	agentkubev1alpha1.RuntimeCodex:      {agentkubev1alpha1.RuntimeCodex, Component{"CODEX", "codex"}, "OPENAI_API_KEY"},
	agentkubev1alpha1.RuntimeOpenCode:   {agentkubev1alpha1.RuntimeOpenCode, Component{"OPENCODE", "opencode"}, "OPENCODE_API_KEY"},
	agentkubev1alpha1.RuntimeGemini:     {agentkubev1alpha1.RuntimeGemini, Component{"GEMINI", "gemini"}, "GEMINI_API_KEY"},
	agentkubev1alpha1.RuntimeAider:      {agentkubev1alpha1.RuntimeAider, Component{"AIDER", "aider"}, "OPENAI_API_KEY"},
	agentkubev1alpha1.RuntimeCline:      {agentkubev1alpha1.RuntimeCline, Component{"CLINE", "cline"}, "ANTHROPIC_API_KEY"},
	agentkubev1alpha1.RuntimeGoose:      {agentkubev1alpha1.RuntimeGoose, Component{"GOOSE", "goose"}, "OPENAI_API_KEY"},
	agentkubev1alpha1.RuntimeCursor:     {agentkubev1alpha1.RuntimeCursor, Component{"CURSOR", "cursor"}, "CURSOR_API_KEY"},
	agentkubev1alpha1.RuntimeCustom:     {Name: agentkubev1alpha1.RuntimeCustom},
}

// Lookup returns the matrix row of a runtime.
func Lookup(r agentkubev1alpha1.Runtime) (Runtime, bool) {
	rt, ok := Matrix[r]
	return rt, ok
}

// TokenEnv is the variable an Agent's agentToken goes into. Custom runtimes
// get AGENT_TOKEN: their command decides what to do with it.
func TokenEnv(r agentkubev1alpha1.Runtime) string {
	if rt, ok := Matrix[r]; ok && rt.TokenEnv != "" {
		return rt.TokenEnv
	}
	return "AGENT_TOKEN"
}

// Images resolves image references. The zero value resolves to the
// published defaults.
type Images struct {
	// Registry replaces DefaultRegistry for default images.
	Registry string
	// Tag replaces DefaultTag for default images.
	Tag string
	// Overrides maps a component Key to a full image reference.
	Overrides map[string]string
}

// ImagesFromEnv reads AGENTKUBE_IMAGE_REGISTRY, AGENTKUBE_IMAGE_TAG and every
// AGENTKUBE_IMAGE_<COMPONENT> from environ (os.Environ() in production).
func ImagesFromEnv(environ []string) Images {
	im := Images{Overrides: map[string]string{}}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" || !strings.HasPrefix(k, EnvImagePrefix) {
			continue
		}
		switch k {
		case EnvRegistry:
			im.Registry = v
		case EnvImageTag:
			im.Tag = v
		default:
			im.Overrides[strings.TrimPrefix(k, EnvImagePrefix)] = v
		}
	}
	return im
}

// Component returns the image of c: its override, else the default name
// under the registry.
func (im Images) Component(c Component) string {
	if v := im.Overrides[c.Key]; v != "" {
		return v
	}
	registry := strings.TrimSuffix(im.Registry, "/")
	if registry == "" {
		registry = DefaultRegistry
	}
	tag := im.Tag
	if tag == "" {
		tag = DefaultTag
	}
	return registry + "/" + c.Image + ":" + tag
}

// Agentlet is the agentlet sidecar's image.
func (im Images) Agentlet() string { return im.Component(Agentlet) }

// ErrImageRequired says a runtime has no default image.
type ErrImageRequired struct{ Runtime agentkubev1alpha1.Runtime }

func (e ErrImageRequired) Error() string {
	return fmt.Sprintf("runtime %s has no default image: set spec.image", e.Runtime)
}

// Runtime resolves an Agent's runtime image: specImage wins, then
// AGENTKUBE_IMAGE_<RUNTIME>, then the registry default.
func (im Images) Runtime(r agentkubev1alpha1.Runtime, specImage string) (string, error) {
	if specImage != "" {
		return specImage, nil
	}
	rt, ok := Matrix[r]
	if !ok {
		return "", fmt.Errorf("unknown runtime %q", r)
	}
	if rt.Component.Image == "" {
		// Custom may still be pinned cluster-wide by AGENTKUBE_IMAGE_CUSTOM.
		if v := im.Overrides[strings.ToUpper(string(r))]; v != "" {
			return v, nil
		}
		return "", ErrImageRequired{Runtime: r}
	}
	return im.Component(rt.Component), nil
}

// String lists the effective configuration, for the manager's start-up log.
func (im Images) String() string {
	keys := make([]string, 0, len(im.Overrides))
	for k := range im.Overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "registry=%s tag=%s", firstNonEmpty(im.Registry, DefaultRegistry), firstNonEmpty(im.Tag, DefaultTag))
	for _, k := range keys {
		fmt.Fprintf(&b, " %s%s=%s", EnvImagePrefix, k, im.Overrides[k])
	}
	return b.String()
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
