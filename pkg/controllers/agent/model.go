package agent

import (
	corev1 "k8s.io/api/core/v1"

	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

// modelEnv is the agentlet's model configuration from spec.model: the name,
// the provider and where the model API is. The agentlet turns them into each
// runtime's own flags, variables and configuration files
// (pkg/agentlet/adapter), so the manager need not know how a CLI takes an
// endpoint. Unset fields give no variable, so an Agent without them keeps
// its pod's spec hash.
func modelEnv(spec agentkubev1alpha1.AgentSpec) []corev1.EnvVar {
	m := spec.Model
	if m == nil {
		return nil
	}
	var env []corev1.EnvVar
	for _, v := range []struct{ name, value string }{
		{agentletconfig.EnvModel, m.Name},
		{agentletconfig.EnvModelProvider, m.Provider},
		{agentletconfig.EnvModelBaseURL, m.BaseURL},
	} {
		if v.value != "" {
			env = append(env, corev1.EnvVar{Name: v.name, Value: v.value})
		}
	}
	return env
}
