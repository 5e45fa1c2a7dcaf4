// Package agent serves the subresources.agentkube.io view of agentkube.io Agents: the
// read-only parent resource agents and its subresources invoke (a NamedCreater that creates
// an AgentRun and waits for it), log and attach (Connecters that proxy the agentlet in the
// Agent's pod). Nothing here is stored in etcd: Agents come from an informer cache, runs are
// AgentRuns in kube-apiserver.
package agent

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/apis/subresources"
	agentlisters "github.com/exo-in-go/exo/pkg/generated/listers/agentkube/v1alpha1"
)

// AgentReader reads agentkube.io Agents, from a cache: the subresources are on the request
// path of every invoke, and a cache keeps them from costing a kube-apiserver round trip.
// Implementations return an apierrors NotFound for a missing Agent.
type AgentReader interface {
	GetAgent(ctx context.Context, namespace, name string) (*agentkubev1alpha1.Agent, error)
	ListAgents(ctx context.Context, namespace string, selector labels.Selector) ([]*agentkubev1alpha1.Agent, error)
}

// FromLister reads Agents through a lister of the generated shared informer factory.
func FromLister(l agentlisters.AgentLister) AgentReader { return listerReader{l} }

type listerReader struct{ lister agentlisters.AgentLister }

func (r listerReader) GetAgent(_ context.Context, namespace, name string) (*agentkubev1alpha1.Agent, error) {
	return r.lister.Agents(namespace).Get(name)
}

func (r listerReader) ListAgents(_ context.Context, namespace string, selector labels.Selector) ([]*agentkubev1alpha1.Agent, error) {
	if namespace == "" {
		return r.lister.List(selector)
	}
	return r.lister.Agents(namespace).List(selector)
}

// FromClient reads Agents through a controller-runtime reader, typically the manager's
// cache (mgr.GetCache()), so the manager holds one copy of every Agent, not two.
func FromClient(c client.Reader) AgentReader { return clientReader{c} }

type clientReader struct{ reader client.Reader }

func (r clientReader) GetAgent(ctx context.Context, namespace, name string) (*agentkubev1alpha1.Agent, error) {
	var a agentkubev1alpha1.Agent
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func (r clientReader) ListAgents(ctx context.Context, namespace string, selector labels.Selector) ([]*agentkubev1alpha1.Agent, error) {
	var list agentkubev1alpha1.AgentList
	if err := r.reader.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, err
	}
	out := make([]*agentkubev1alpha1.Agent, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// getAgent reads an Agent and translates a miss into this group's NotFound, so the caller
// reads `agents.subresources.agentkube.io "x" not found` for the resource they asked for.
func getAgent(ctx context.Context, agents AgentReader, namespace, name string) (*agentkubev1alpha1.Agent, error) {
	a, err := agents.GetAgent(ctx, namespace, name)
	if apierrors.IsNotFound(err) {
		return nil, apierrors.NewNotFound(subresources.Resource("agents"), name)
	}
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("reading Agent %s/%s: %w", namespace, name, err))
	}
	return a, nil
}

// toInternal projects an agentkube.io Agent onto the fields this group shows.
func toInternal(in *agentkubev1alpha1.Agent) *subresources.Agent {
	out := &subresources.Agent{
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
		Spec: subresources.AgentSpec{
			Runtime: string(in.Spec.Runtime),
			Mode:    string(in.Spec.Mode),
			Paused:  in.Spec.Paused,
		},
		Status: subresources.AgentStatus{
			Phase:   in.Status.Phase,
			Ready:   in.Status.Ready,
			PodName: in.Status.PodName,
			LastRun: in.Status.LastRun,
		},
	}
	// managedFields describe writes to agentkube.io, not to this read-only view.
	out.ManagedFields = nil
	return out
}
