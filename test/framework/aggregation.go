package framework

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// AggregatedAPI describes an aggregated API server that listens on 127.0.0.1:Port.
//
// kube-apiserver reaches it through a Service of type ExternalName pointing at
// localhost (Endpoints may not hold loopback addresses) and verifies its serving
// certificate against <Service>.<Namespace>.svc, so the server's certificate must carry
// that name and be signed by CABundle.
type AggregatedAPI struct {
	Group, Version     string
	Namespace, Service string
	Port               int32
	CABundle           []byte
	// GroupPriorityMinimum orders groups that share resource names; keep it below the
	// CRD groups' 1000 so a plain `kubectl get agents` resolves to agentkube.io.
	GroupPriorityMinimum int32
	VersionPriority      int32
}

// APIServiceName is the APIService object's name, <version>.<group>.
func (a AggregatedAPI) APIServiceName() string { return a.Version + "." + a.Group }

// RegisterAggregatedAPI creates (or updates) the Service and the APIService for the
// server and waits until kube-apiserver reports the APIService Available.
func (c *Cluster) RegisterAggregatedAPI(ctx context.Context, api AggregatedAPI) error {
	if api.GroupPriorityMinimum == 0 {
		api.GroupPriorityMinimum = 900
	}
	if api.VersionPriority == 0 {
		api.VersionPriority = 15
	}
	if err := c.EnsureNamespace(ctx, api.Namespace); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: api.Service, Namespace: api.Namespace},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports:        []corev1.ServicePort{{Name: "https", Port: api.Port}},
		},
	}
	existing, err := c.Kube.CoreV1().Services(api.Namespace).Get(ctx, api.Service, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = c.Kube.CoreV1().Services(api.Namespace).Create(ctx, svc, metav1.CreateOptions{})
	case err == nil:
		existing.Spec = svc.Spec
		_, err = c.Kube.CoreV1().Services(api.Namespace).Update(ctx, existing, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("writing Service %s/%s: %w", api.Namespace, api.Service, err)
	}

	port := api.Port
	desired := &apiregv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: api.APIServiceName()},
		Spec: apiregv1.APIServiceSpec{
			Group:                api.Group,
			Version:              api.Version,
			Service:              &apiregv1.ServiceReference{Namespace: api.Namespace, Name: api.Service, Port: &port},
			CABundle:             api.CABundle,
			GroupPriorityMinimum: api.GroupPriorityMinimum,
			VersionPriority:      api.VersionPriority,
		},
	}
	apiServices := c.Aggregator.ApiregistrationV1().APIServices()
	current, err := apiServices.Get(ctx, desired.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = apiServices.Create(ctx, desired, metav1.CreateOptions{})
	case err == nil:
		current.Spec = desired.Spec
		_, err = apiServices.Update(ctx, current, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("writing APIService %s: %w", desired.Name, err)
	}
	return c.WaitForAPIServiceAvailable(ctx, desired.Name, time.Minute)
}

// WaitForAPIServiceAvailable waits until the APIService's Available condition is True.
func (c *Cluster) WaitForAPIServiceAvailable(ctx context.Context, name string, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		svc, err := c.Aggregator.ApiregistrationV1().APIServices().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, cond := range svc.Status.Conditions {
			if cond.Type == apiregv1.Available {
				last = fmt.Sprintf("%s: %s", cond.Reason, cond.Message)
				return cond.Status == apiregv1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("APIService %s did not become Available (last: %s): %w", name, last, err)
	}
	return nil
}
