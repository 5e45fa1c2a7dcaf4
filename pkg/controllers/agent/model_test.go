package agent

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

func TestModelEnv(t *testing.T) {
	if env := modelEnv(agentkubev1alpha1.AgentSpec{Runtime: agentkubev1alpha1.RuntimeCodex}); env != nil {
		t.Errorf("no model: %v, want no variables", env)
	}
	got := modelEnv(agentkubev1alpha1.AgentSpec{Runtime: agentkubev1alpha1.RuntimeGemini, Model: &agentkubev1alpha1.ModelSpec{
		Name: "gemini-x", BaseURL: "http://llm-gateway.ai.svc:8080",
	}})
	want := []corev1.EnvVar{
		{Name: agentletconfig.EnvModel, Value: "gemini-x"},
		{Name: agentletconfig.EnvModelBaseURL, Value: "http://llm-gateway.ai.svc:8080"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("modelEnv = %v, want %v (no provider variable when none is set)", got, want)
	}
}
