// Package index registers the cache field indexes the controllers share.
package index

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
)

const (
	// RunAgent indexes AgentRuns by spec.agentRef.name, so "the runs of this
	// Agent" is a cache lookup rather than a scan.
	RunAgent = "spec.agentRef.name"
	// AgentSecrets indexes Agents by the Secrets they reference (agentToken),
	// so a Secret appearing re-reconciles the Agents waiting for it.
	AgentSecrets = "agentkube.io/secrets"
	// AgentConfigMaps indexes Agents by the ConfigMap holding their goal.
	AgentConfigMaps = "agentkube.io/configmaps"
	// ToolSecrets indexes Tools by their credentials Secret.
	ToolSecrets = "agentkube.io/tool-secrets"
)

// Register adds every index to the indexer (the manager's field indexer).
func Register(ctx context.Context, ix client.FieldIndexer) error {
	for _, i := range []struct {
		obj     client.Object
		field   string
		extract client.IndexerFunc
	}{
		{&agentkubev1alpha1.AgentRun{}, RunAgent, func(o client.Object) []string {
			return []string{o.(*agentkubev1alpha1.AgentRun).Spec.AgentRef.Name}
		}},
		{&agentkubev1alpha1.Agent{}, AgentSecrets, func(o client.Object) []string {
			a := o.(*agentkubev1alpha1.Agent)
			if a.Spec.AgentToken == nil {
				return nil
			}
			return []string{a.Spec.AgentToken.SecretRef.Name}
		}},
		{&agentkubev1alpha1.Agent{}, AgentConfigMaps, func(o client.Object) []string {
			a := o.(*agentkubev1alpha1.Agent)
			if a.Spec.Goal == nil || a.Spec.Goal.ConfigMapKeyRef == nil {
				return nil
			}
			return []string{a.Spec.Goal.ConfigMapKeyRef.Name}
		}},
		{&agentkubev1alpha1.Tool{}, ToolSecrets, func(o client.Object) []string {
			t := o.(*agentkubev1alpha1.Tool)
			if t.Spec.Config.CredentialsRef == nil {
				return nil
			}
			return []string{t.Spec.Config.CredentialsRef.Name}
		}},
	} {
		if err := ix.IndexField(ctx, i.obj, i.field, i.extract); err != nil {
			return fmt.Errorf("index %T by %s: %w", i.obj, i.field, err)
		}
	}
	return nil
}
