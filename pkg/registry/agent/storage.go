package agent

import (
	"context"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/exo-in-go/exo/pkg/apis/subresources"
)

// REST is the read-only agents resource. Writes go to agentkube.io; this group exists for
// its subresources, and the parent must be gettable for kubectl and installers.
type REST struct {
	agents AgentReader
}

var (
	_ rest.Storage              = &REST{}
	_ rest.Scoper               = &REST{}
	_ rest.Getter               = &REST{}
	_ rest.Lister               = &REST{}
	_ rest.TableConvertor       = &REST{}
	_ rest.SingularNameProvider = &REST{}
)

// NewREST returns the agents storage.
func NewREST(agents AgentReader) *REST { return &REST{agents: agents} }

// New implements rest.Storage.
func (r *REST) New() runtime.Object { return &subresources.Agent{} }

// Destroy implements rest.Storage.
func (r *REST) Destroy() {}

// NamespaceScoped implements rest.Scoper.
func (r *REST) NamespaceScoped() bool { return true }

// GetSingularName implements rest.SingularNameProvider.
func (r *REST) GetSingularName() string { return "agent" }

// NewList implements rest.Lister.
func (r *REST) NewList() runtime.Object { return &subresources.AgentList{} }

// Get implements rest.Getter.
func (r *REST) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	a, err := getAgent(ctx, r.agents, genericapirequest.NamespaceValue(ctx), name)
	if err != nil {
		return nil, err
	}
	return toInternal(a), nil
}

// List implements rest.Lister. It honours label selectors and the metadata.name and
// metadata.namespace field selectors.
func (r *REST) List(ctx context.Context, options *metainternalversion.ListOptions) (runtime.Object, error) {
	labelSelector, fieldSelector := labels.Everything(), fields.Everything()
	if options != nil && options.LabelSelector != nil {
		labelSelector = options.LabelSelector
	}
	if options != nil && options.FieldSelector != nil {
		fieldSelector = options.FieldSelector
	}
	agents, err := r.agents.ListAgents(ctx, genericapirequest.NamespaceValue(ctx), labelSelector)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("listing Agents: %w", err))
	}
	list := &subresources.AgentList{}
	for _, a := range agents {
		if !fieldSelector.Matches(fields.Set{"metadata.name": a.Name, "metadata.namespace": a.Namespace}) {
			continue
		}
		list.Items = append(list.Items, *toInternal(a))
	}
	sort.Slice(list.Items, func(i, j int) bool {
		if list.Items[i].Namespace != list.Items[j].Namespace {
			return list.Items[i].Namespace < list.Items[j].Namespace
		}
		return list.Items[i].Name < list.Items[j].Name
	})
	return list, nil
}

var agentColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the Agent."},
	{Name: "Ready", Type: "string", Description: "Ready containers of the Agent's pod."},
	{Name: "Status", Type: "string", Description: "Phase of the Agent."},
	{Name: "Runtime", Type: "string", Description: "Runtime the Agent runs."},
	{Name: "Last Run", Type: "string", Description: "Most recently started AgentRun."},
	{Name: "Age", Type: "string", Description: "Time since the Agent was created."},
}

// ConvertToTable implements rest.TableConvertor, with the CRD's printer columns.
func (r *REST) ConvertToTable(_ context.Context, object runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: agentColumns}
	var items []subresources.Agent
	switch obj := object.(type) {
	case *subresources.Agent:
		items = []subresources.Agent{*obj}
	case *subresources.AgentList:
		items = obj.Items
		table.ResourceVersion = obj.ResourceVersion
		table.Continue = obj.Continue
	default:
		return nil, fmt.Errorf("cannot print %T as a table", object)
	}
	for i := range items {
		a := &items[i]
		age := "<unknown>"
		if !a.CreationTimestamp.IsZero() {
			age = duration.HumanDuration(time.Since(a.CreationTimestamp.Time))
		}
		table.Rows = append(table.Rows, metav1.TableRow{
			Cells:  []any{a.Name, a.Status.Ready, a.Status.Phase, a.Spec.Runtime, a.Status.LastRun, age},
			Object: runtime.RawExtension{Object: a},
		})
	}
	if m, err := meta.ListAccessor(object); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
	}
	return table, nil
}
