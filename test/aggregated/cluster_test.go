package aggregated

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/exo-in-go/exo/test/framework"
)

// applyManifest creates every object of a multi-document YAML file, as `kubectl apply`
// would for a fresh cluster (namespaces the objects name are created first). APIServices
// are only validated (server-side dry run).
func applyManifest(ctx context.Context, c *framework.Cluster, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decoding %s: %w", path, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if ns := obj.GetNamespace(); ns != "" {
			if err := c.EnsureNamespace(ctx, ns); err != nil {
				return err
			}
		}
		opts := []client.CreateOption{client.FieldOwner("aggregated-test")}
		if obj.GetKind() == "APIService" {
			// Validated, not stored: the framework registers the APIService pointing at
			// this process, and racing it with the aggregator's status updates would
			// conflict.
			opts = append(opts, client.DryRunAll)
		}
		if err := c.Client.Create(ctx, &obj, opts...); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s from %s: %w", obj.GetKind(), obj.GetName(), path, err)
		}
	}
}

// aggregateClusterRoles fills every ClusterRole that has an aggregationRule with the
// rules of the ClusterRoles its selectors match: what kube-controller-manager's
// clusterrole-aggregation controller does. The test cluster runs no controller manager,
// and without this view, edit and admin would carry no rules at all.
func aggregateClusterRoles(ctx context.Context, kube kubernetes.Interface) error {
	roles, err := kube.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range roles.Items {
		role := &roles.Items[i]
		if role.AggregationRule == nil {
			continue
		}
		var rules []rbacv1.PolicyRule
		for _, sel := range role.AggregationRule.ClusterRoleSelectors {
			selector, err := metav1.LabelSelectorAsSelector(&sel)
			if err != nil {
				return err
			}
			for j := range roles.Items {
				other := &roles.Items[j]
				if other.Name == role.Name || !selector.Matches(labels.Set(other.Labels)) {
					continue
				}
				for _, r := range other.Rules {
					if !containsRule(rules, r) {
						rules = append(rules, r)
					}
				}
			}
		}
		if reflect.DeepEqual(rules, role.Rules) {
			continue
		}
		role.Rules = rules
		if _, err := kube.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("aggregating ClusterRole %s: %w", role.Name, err)
		}
	}
	return nil
}

func containsRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for _, have := range rules {
		if reflect.DeepEqual(have, r) {
			return true
		}
	}
	return false
}
