package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/exo-in-go/exo/pkg/localnode"
	"github.com/exo-in-go/exo/test/framework"
)

// agentletImage matches the agentlet image whatever registry or tag the manager uses.
const agentletImage = "*agentkube-agentlet*"

// startNode runs localnode in this process: the agentlet image runs the agentlet
// binary (in an Agent pod it installs itself into the pod's shared volume); every
// other image (the runtime CLIs) runs a process that waits unless its container
// sets a command, as the Agent container does to start the installed agentlet,
// which then runs the runtime command with the host's tools and listens on its pod
// IP, since every pod shares the host's network.
func startNode(ctx context.Context, cluster *framework.Cluster, bin, dir string, log *slog.Logger) (<-chan error, error) {
	images := localnode.ImageMap{Images: []localnode.ImageMapping{
		{Image: agentletImage, Binary: filepath.Join(bin, "agentlet")},
		{
			Image: "*", Binary: "/bin/sleep", Args: []string{"infinity"},
			Env: map[string]string{"AGENTLET_LISTEN_ADDRESS": "$(" + localnode.EnvPodIP + "):8090"},
		},
	}}
	node, err := localnode.New(localnode.Options{
		Config:           cluster.Config,
		NodeName:         "localnode",
		ImageMap:         images,
		StateDir:         filepath.Join(dir, "localnode"),
		ListenAddress:    "127.0.0.1:0",
		ServingCACertPEM: cluster.PKI.KubeletServingCA.CertPEM,
		ServingCAKeyPEM:  cluster.PKI.KubeletServingCA.KeyPEM,
		ClientCAPEM:      cluster.PKI.KubeletClientCA.CertPEM,
		// No BindUnscheduledPods: kube-scheduler binds pods here, as it would to a kubelet.
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("localnode: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx) }()
	return done, nil
}
