//go:build linux

package localnode_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/exo-in-go/exo/pkg/localnode"
	"github.com/exo-in-go/exo/pkg/localnode/localnodetest"
	"github.com/exo-in-go/exo/test/framework"
)

// One cluster and one node for the package; tests that stop a node start their
// own.
var (
	cluster      *framework.Cluster
	node         *localnode.Node
	agentletPath string
)

const (
	nodeName      = "localnode"
	shellImage    = "docker.io/library/busybox:1.36"
	runtimeImage  = "example.com/agents/runtime-standin:1"
	agentletImage = "registry.example.com/exo-in-go/agentkube-agentlet:v0.3.0"
	unmappedImage = "example.com/not-mapped:1"
)

func imageMap() localnode.ImageMap {
	return localnode.ImageMap{Images: []localnode.ImageMapping{
		localnodetest.AgentletMapping(agentletPath),
		localnodetest.RuntimeStandIn("example.com/agents/runtime-*"),
		// busybox's entrypoint is sh.
		{Image: "docker.io/library/busybox*", Binary: "/bin/sh"},
	}}
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "localnode-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	agentletPath = filepath.Join(tmp, "agentlet")
	build := exec.Command("go", "build", "-o", agentletPath, "./cmd/agentlet")
	build.Dir = framework.RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the agentlet:", err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cluster, err = framework.Start(ctx, framework.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting test cluster:", err)
		return 1
	}
	defer cluster.Stop()

	n, err := localnode.New(localnode.Options{
		Config:            cluster.Config,
		NodeName:          nodeName,
		ImageMap:          imageMap(),
		StateDir:          filepath.Join(tmp, "state"),
		ListenAddress:     "127.0.0.1:0",
		ServingCACertPEM:  cluster.PKI.KubeletServingCA.CertPEM,
		ServingCAKeyPEM:   cluster.PKI.KubeletServingCA.KeyPEM,
		ClientCAPEM:       cluster.PKI.KubeletClientCA.CertPEM,
		RestartBackoff:    500 * time.Millisecond,
		MaxRestartBackoff: 4 * time.Second,
		Logger:            testLogger(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "localnode:", err)
		return 1
	}
	node = n
	nctx, ncancel := context.WithCancel(context.Background())
	go func() { _ = n.Run(nctx) }()
	defer func() {
		ncancel()
		<-n.Done()
	}()
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	err = n.WaitReady(rctx)
	rcancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localnode not ready:", err)
		return 1
	}
	return m.Run()
}

// shellPod runs script with sh on the package's node.
func shellPod(ns, name, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      nodeName,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr.To[int64](3),
			Containers: []corev1.Container{{
				Name:    "main",
				Image:   shellImage,
				Command: []string{"sh", "-c", script},
			}},
		},
	}
}

func createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := cluster.Kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	return created
}

func terminated(p *corev1.Pod, container string) *corev1.ContainerStateTerminated {
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.Name == container {
			return cs.State.Terminated
		}
	}
	return nil
}

func containerStatus(p *corev1.Pod, container string) corev1.ContainerStatus {
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.Name == container {
			return cs
		}
	}
	return corev1.ContainerStatus{}
}
