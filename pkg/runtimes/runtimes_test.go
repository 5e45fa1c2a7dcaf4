package runtimes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exo-in-go/exo/pkg/agentlet/adapter"
	"github.com/exo-in-go/exo/pkg/agentlet/config"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

func TestRuntimeResolutionOrder(t *testing.T) {
	im := ImagesFromEnv([]string{
		"AGENTKUBE_IMAGE_REGISTRY=mirror.example.com/exo-in-go/",
		"AGENTKUBE_IMAGE_CODEX=example.com/codex:pinned",
		"AGENTKUBE_IMAGE_AGENTLET=example.com/agentlet:dev",
		"PATH=/bin",
	})
	cases := []struct {
		runtime   agentkubev1alpha1.Runtime
		specImage string
		want      string
	}{
		{agentkubev1alpha1.RuntimeCodex, "mine/codex:1", "mine/codex:1"},
		{agentkubev1alpha1.RuntimeCodex, "", "example.com/codex:pinned"},
		{agentkubev1alpha1.RuntimeClaudeCode, "", "mirror.example.com/exo-in-go/claudecode:" + DefaultTag},
		{agentkubev1alpha1.RuntimeCustom, "custom:1", "custom:1"},
	}
	for _, c := range cases {
		got, err := im.Runtime(c.runtime, c.specImage)
		if err != nil || got != c.want {
			t.Errorf("Runtime(%s, %q) = %q, %v; want %q", c.runtime, c.specImage, got, err, c.want)
		}
	}
	if _, err := im.Runtime(agentkubev1alpha1.RuntimeCustom, ""); err == nil {
		t.Error("Custom without image resolved")
	}
	if got := im.Agentlet(); got != "example.com/agentlet:dev" {
		t.Errorf("Agentlet() = %q", got)
	}
	if got := (Images{}).Agentlet(); got != DefaultRegistry+"/agentkube-agentlet:"+DefaultTag {
		t.Errorf("default agentlet = %q", got)
	}
}

// TestEveryRuntimeInMatrix: every runtime the agentlet knows has a row, and the
// manager puts an Agent's key into the variable the agentlet's adapter reads
// it from (the two tables must never disagree).
func TestEveryRuntimeInMatrix(t *testing.T) {
	for _, r := range config.Runtimes {
		rt := agentkubev1alpha1.Runtime(r)
		if _, ok := Lookup(rt); !ok {
			t.Errorf("%s missing from the matrix", r)
		}
		if got, want := TokenEnv(rt), adapter.TokenEnv(r); got != want {
			t.Errorf("TokenEnv(%s) = %s, the adapter reads %s", r, got, want)
		}
	}
	if len(Matrix) != len(config.Runtimes) {
		t.Errorf("the matrix has %d runtimes, the agentlet knows %d", len(Matrix), len(config.Runtimes))
	}
	if got := TokenEnv(agentkubev1alpha1.RuntimeGemini); got != "GEMINI_API_KEY" {
		t.Errorf("TokenEnv(Gemini) = %s", got)
	}
}

// TestDefaultsAreTheProjectsRelease: the default images are the ones make images builds,
// named <DefaultRegistry>/<name>:<VERSION>. Bumping VERSION without DefaultTag would make
// the manager launch an agentlet that was never built.
func TestDefaultsAreTheProjectsRelease(t *testing.T) {
	v, err := os.ReadFile(filepath.Join("..", "..", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(v)); got != DefaultTag {
		t.Errorf("VERSION is %q, DefaultTag %q", got, DefaultTag)
	}
	if DefaultRegistry != "ghcr.io/exo-in-go" {
		t.Errorf("DefaultRegistry %q: the project publishes under ghcr.io/exo-in-go", DefaultRegistry)
	}
	// hack/tools/images names the agentlet image after this component.
	if Agentlet.Image != "agentkube-agentlet" {
		t.Errorf("Agentlet.Image %q: make images builds agentkube-agentlet", Agentlet.Image)
	}
}
