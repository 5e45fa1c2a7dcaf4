// Package connecttest runs the operator's tunnel connector (pkg/connect) in
// a test the way agentkube-manager runs it in managed mode: in a
// controller-runtime manager whose cache holds the agentkube objects and only
// the manager's own pods.
package connecttest

import (
	"context"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/exo-in-go/exo/pkg/connect"
)

// Start runs the connector with opts (Managed is set) as cfg's identity
// until the test ends or the returned stop is called. stop waits for the
// manager to end (the connector closes its tunnel and waits for its shells)
// and fails the test if it ended with an error; it may be called again.
func Start(t testing.TB, cfg *rest.Config, scheme *runtime.Scheme, opts connect.Options) (stop func()) {
	t.Helper()
	managed, err := labels.Parse(connect.DefaultPodSelector)
	if err != nil {
		t.Fatal(err)
	}
	mopts := manager.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Pod{}: {Label: managed}}},
	}
	if opts.Logger.GetSink() != nil {
		mopts.Logger = opts.Logger
	}
	mgr, err := manager.New(cfg, mopts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Managed = true
	if err := connect.AddToManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("operator: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
