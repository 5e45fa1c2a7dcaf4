// Package connecttest runs agentkube-manager in managed mode in a test, as
// app.New (pkg/manager/app) assembles it, with only its tunnel connector
// (pkg/connect) and what the connector uses (the certificates, for the
// agentlet CA its run output verifies, and the shells): no controllers,
// webhook or aggregated API, so it can run beside a test's own manager or
// none.
package connecttest

import (
	"context"
	"sync"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/manager/app"
)

// Start runs agentkube-manager's connector with opts (Managed is set) as
// cfg's identity until the test ends or the returned stop is called. stop
// waits for the manager to end (the connector closes its tunnel and waits
// for its shells) and fails the test if it ended with an error; it may be
// called again. The App is the assembled manager (App.Shells are its shells).
func Start(t testing.TB, cfg *rest.Config, opts connect.Options) (a *app.App, stop func()) {
	t.Helper()
	st := app.DefaultSettings()
	st.Manager.LeaderElection = false
	st.Manager.MetricsBindAddress, st.Manager.HealthProbeBindAddress = "0", "0"
	st.Manager.Controllers = nil
	st.Webhook.Port = 0
	st.API.SecureServing.BindPort = 0
	opts.Managed = true
	st.Connect = opts
	var ao app.Options
	ao.Config = cfg
	if opts.Logger.GetSink() != nil {
		ao.Logger = &opts.Logger
	}
	a, err := app.New(st, ao)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
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
	return a, stop
}
