package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/client-go/kubernetes"

	"github.com/exo-in-go/exo/pkg/apiserver"
	"github.com/exo-in-go/exo/pkg/generated/clientset/versioned"
	agentkubeinformers "github.com/exo-in-go/exo/pkg/generated/informers/externalversions"
	agentregistry "github.com/exo-in-go/exo/pkg/registry/agent"
)

// Server is the aggregated API server, ready to run. It is a controller-runtime Runnable
// (Start, NeedLeaderElection) so agentkube-manager adds it with mgr.Add.
type Server struct {
	*apiserver.Server
}

// NeedLeaderElection is false: every replica serves, so the APIService stays Available
// through a rolling update or a lost leader.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	return s.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

// NewServer completes, validates and builds the server from the options.
func (o *Options) NewServer() (*Server, error) {
	if err := o.Complete(); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	config, err := o.Config()
	if err != nil {
		return nil, err
	}
	agentkube, err := versioned.NewForConfig(config.GenericConfig.ClientConfig)
	if err != nil {
		return nil, fmt.Errorf("building agentkube client: %w", err)
	}
	config.ExtraConfig.AgentRuns = agentkube.AgentkubeV1alpha1()

	var agentInformers agentkubeinformers.SharedInformerFactory
	if config.ExtraConfig.Agents == nil {
		agentInformers = agentkubeinformers.NewSharedInformerFactory(agentkube, 10*time.Minute)
		config.ExtraConfig.Agents = agentregistry.FromLister(agentInformers.Agentkube().V1alpha1().Agents().Lister())
	}
	if config.ExtraConfig.Locator == nil {
		kube, err := kubernetes.NewForConfig(config.GenericConfig.ClientConfig)
		if err != nil {
			return nil, fmt.Errorf("building Kubernetes client: %w", err)
		}
		config.ExtraConfig.Locator = &agentregistry.PodLocator{Client: kube, AgentletBundle: o.AgentletBundle}
	}

	srv, err := config.Complete().New()
	if err != nil {
		return nil, err
	}
	if agentInformers != nil {
		informer := agentInformers.Agentkube().V1alpha1().Agents().Informer()
		srv.GenericAPIServer.AddPostStartHookOrDie("start-agentkube-informers", func(ctx genericapiserver.PostStartHookContext) error {
			agentInformers.Start(ctx.Done())
			return nil
		})
		// Not ready before the cache holds the Agents: an empty cache would answer 404 for
		// Agents that exist. Discovery does not depend on it.
		if err := srv.GenericAPIServer.AddReadyzChecks(healthz.NamedCheck("agentkube-informer-sync", func(_ *http.Request) error {
			if !informer.HasSynced() {
				return errors.New("the Agent cache has not synced yet")
			}
			return nil
		})); err != nil {
			return nil, err
		}
	}
	return &Server{Server: srv}, nil
}
